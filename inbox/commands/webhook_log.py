"""`inbox webhooks list|replay`: the webhook archive, every organization's and none's."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings, with_development_key
from .database import prepare, run
from .output import CliError, emit


def cmd_webhooks_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import col, select

    from ..models import WebhookRecord
    from ..services.webhook_archive.public import record_public

    async def work(db: Any) -> int:
        stmt = select(WebhookRecord)
        if args.outcome:
            stmt = stmt.where(col(WebhookRecord.outcome) == args.outcome)
        async with db.session() as session:
            found = list(
                await session.exec(stmt.order_by(col(WebhookRecord.id).desc()).limit(args.limit))
            )
        records = [
            {**record_public(r).model_dump(mode="json"), "organization_id": r.organization_id}
            for r in found
        ]
        lines = [
            f"{r['id']}\t{r['received_at']}\t{r['kind']}\torg {r['organization_id']}\t"
            f"{r['outcome']} ({r['status']})"
            for r in records
        ]
        emit(args, {"records": records}, "\n".join(lines) or "no records")
        return 0

    prepare(args, settings, writes=False)
    return run(settings, work)


def cmd_webhooks_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Each request runs again in a service started here (its channels, secrets, group
    commit and broker), and every outcome is printed; 1 if one was refused."""
    import asyncio

    from ..app import create_app
    from ..errors import ApiError
    from ..models import WebhookRecord
    from ..web.webhook_replay import replay

    prepare(args, settings)
    app = create_app(with_development_key(settings))
    state = app.state.inbox

    async def work() -> int:
        failed = 0
        results: list[dict[str, Any]] = []
        async with app.router.lifespan_context(app):
            for record_id in args.ids:
                async with state.db.session() as session:
                    record = await session.get(WebhookRecord, record_id)
                if record is None:
                    failed += 1
                    results.append({"id": record_id, "error": "no such record"})
                    continue
                try:
                    done = await replay(app, state, record)
                except ApiError as exc:
                    failed += 1
                    results.append({"id": record_id, "error": exc.message})
                    continue
                results.append(
                    {
                        "id": record_id,
                        "outcome": done.outcome,
                        "status": done.status,
                        "record_id": done.record_id,
                    }
                )
        lines = [
            f"{r['id']}: {r['error']}"
            if "error" in r
            else f"{r['id']}: {r['outcome']} ({r['status']}), recorded as {r['record_id']}"
            for r in results
        ]
        emit(args, {"replays": results}, "\n".join(lines))
        return 1 if failed else 0

    try:
        return asyncio.run(work())
    except OSError as exc:
        raise CliError(f"cannot start the service to replay: {exc}") from None
