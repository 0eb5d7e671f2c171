"""A channel's templates read again when a status webhook names one never synced (a
template created in WhatsApp Manager since the last sync) or tells an event not
understood here: after the webhook is answered, never on its path, once at a time per
channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from connectors.types import ChannelHealth, InboundEvent
from connectors.whatsapp_templates import TemplateListError

from ..db import Database
from ..models import Channel
from .channel_secrets import ChannelSecrets
from .templates import needs_sync, sync_channel

log = logging.getLogger("inbox.templates")

STATUS_FIELD = "message_template_status_update"


class TemplateResync:
    """Owned by the app's lifespan (``close``)."""

    def __init__(
        self, db: Database, secrets: ChannelSecrets, http: httpx.AsyncClient, *, base_url: str
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.http = http
        self.base_url = base_url
        # Channel id -> the status notices not yet looked at; a channel is in it while
        # a task of its own is looking, which takes what arrives meanwhile too.
        self._pending: dict[int, list[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def want(self, channel: Channel, events: Sequence[InboundEvent]) -> None:
        """Look, after the answer, whether ``events`` (stored for ``channel``) ask for
        its templates to be read again."""
        notices = [
            dict(event.data)
            for event in events
            if isinstance(event, ChannelHealth) and event.field == STATUS_FIELD
        ]
        if not notices or channel.kind != "whatsapp" or channel.id is None:
            return
        waiting = self._pending.get(channel.id)
        if waiting is not None:
            waiting.extend(notices)
            return
        self._pending[channel.id] = notices
        task = asyncio.create_task(self._look(channel.id), name=f"templates-{channel.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look(self, channel_id: int) -> None:
        try:
            while notices := self._pending.get(channel_id):
                self._pending[channel_id] = []
                await self._sync_if_needed(channel_id, notices)
        except TemplateListError as exc:
            log.warning("channel %s: its templates could not be read again: %s", channel_id, exc)
        except Exception:
            log.exception("channel %s: reading its templates again failed", channel_id)
        finally:
            self._pending.pop(channel_id, None)

    async def _sync_if_needed(self, channel_id: int, notices: list[dict[str, Any]]) -> None:
        async with self.db.session() as session:
            channel = await session.get(Channel, channel_id)
            if channel is None or channel.kind != "whatsapp":
                return
            wanted = [await needs_sync(session, channel_id, notice) for notice in notices]
        if not any(wanted):
            return
        result = await sync_channel(self.db, self.secrets, self.http, self.base_url, channel)
        log.info(
            "channel %s: templates read again after a status webhook (%d, %d new)",
            channel_id,
            result.templates,
            result.added,
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
