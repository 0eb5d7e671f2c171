"""WhatsApp message templates: read from the Business Account into the database."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings
from .database import prepare, run
from .output import CliError, emit


def cmd_sync_templates(args: argparse.Namespace, settings: Settings) -> int:
    import httpx
    from sqlmodel import col, select

    from connectors.errors import PlatformCallError

    from ..models import Channel
    from ..services.channel_secrets import ChannelSecrets, SecretsKeyError
    from ..services.templates import sync_channel

    async def work(db: Any) -> int:
        async with db.session() as session:
            stmt = select(Channel).where(col(Channel.kind) == "whatsapp")
            if args.channel is not None:
                stmt = stmt.where(col(Channel.id) == args.channel)
            else:
                stmt = stmt.where(col(Channel.is_active))
            channels = list(await session.exec(stmt.order_by(col(Channel.id))))
        if args.channel is not None and not channels:
            raise CliError(f"no WhatsApp channel {args.channel}")
        secrets = ChannelSecrets.from_settings(settings)
        results: list[dict[str, Any]] = []
        lines: list[str] = []
        failed = 0
        async with httpx.AsyncClient(timeout=settings.delivery_timeout) as http:
            for channel in channels:
                try:
                    done = await sync_channel(db, secrets, http, settings.graph_api_url, channel)
                except (PlatformCallError, SecretsKeyError) as exc:
                    failed += 1
                    reason = getattr(exc, "message", str(exc))
                    results.append({"channel_id": channel.id, "error": reason})
                    lines.append(f"channel {channel.id} ({channel.name}): not synced: {reason}")
                    continue
                results.append(
                    {
                        "channel_id": done.channel_id,
                        "templates": done.templates,
                        "added": done.added,
                        "removed": done.removed,
                    }
                )
                lines.append(
                    f"channel {channel.id} ({channel.name}): {done.templates} templates "
                    f"({done.added} new, {done.removed} removed)"
                )
        if not channels:
            lines.append("no active WhatsApp channels")
        emit(args, {"channels": results}, "\n".join(lines))
        return 1 if failed else 0

    prepare(args, settings)
    return run(settings, work)
