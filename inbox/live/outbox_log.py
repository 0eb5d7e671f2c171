"""The outbox as the realtime event log: replay after an id, newest id, retention."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import orjson
from sqlalchemy import Text, cast, delete, func
from sqlmodel import col, select

from realtime.envelope import DataNotEncodable, Envelope
from realtime.eventlog import ReplayTruncated
from realtime.protocol import event_unreadable

from ..db import Database
from ..models import Event, Organization, utcnow
from ..services.outbox import OutboxEvent

log = logging.getLogger("inbox.live")

REPLAY_PAGE = 1000
PRUNE_EVERY_SECONDS = 3600
# Unreadable events already logged by this process: each is logged once, not at every
# replay that meets it. Forgotten all at once when full; a repeat line costs little.
MAX_REPORTED = 1024

# The data as stored text, read and parsed here row by row: through the JSON column's
# own parser, one row that does not parse would fail its whole page.
_REPLAY = (
    select(col(Event.id), col(Event.type), col(Event.created_at), cast(col(Event.data), Text))
    .order_by(col(Event.id))
    .limit(REPLAY_PAGE)
)


def envelope_of(event: OutboxEvent) -> Envelope:
    """A committed event as published: its data in the bytes it was stored as."""
    return Envelope.build(
        event.type,
        event.organization_id,
        event.data,
        id=event.id,
        timestamp=event.created_at,
        encoded=event.encoded,
    )


class OutboxLog:
    """Reads the ``events`` table; ids are dense per organization (1, 2, 3, ...)."""

    def __init__(self, db: Database, retention_days: int) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days)
        self._reported: set[tuple[int, int]] = set()

    async def latest_id(self, organization_id: int) -> int:
        async with self.db.session() as session:
            latest = await session.scalar(
                select(Organization.last_event_id).where(col(Organization.id) == organization_id)
            )
        return int(latest or 0)

    async def after(self, organization_id: int, after_id: int) -> AsyncIterator[Envelope]:
        async with self.db.session() as session:
            oldest = await session.scalar(
                select(func.min(Event.id)).where(col(Event.organization_id) == organization_id)
            )
        latest = await self.latest_id(organization_id)
        # Pruned events, or a position this organization never reached (its data was
        # reset): either way the client must reload rather than trust a partial replay.
        if after_id > latest or (after_id < latest and (oldest is None or oldest > after_id + 1)):
            raise ReplayTruncated(f"events after {after_id} are no longer kept")
        cursor = after_id
        while True:
            async with self.db.session() as session:
                rows = list(
                    await session.exec(
                        _REPLAY.where(
                            col(Event.organization_id) == organization_id, col(Event.id) > cursor
                        )
                    )
                )
            for event_id, event_type, created_at, text in rows:
                yield self._envelope(organization_id, event_id, event_type, created_at, text)
            if len(rows) < REPLAY_PAGE:
                return
            cursor = rows[-1][0]

    def _envelope(
        self, organization_id: int, event_id: int, event_type: str, created_at: datetime, text: str
    ) -> Envelope:
        """The stored event as a frame, or the error frame that stands in for it."""
        try:
            data = orjson.loads(text)
            if not isinstance(data, dict):
                raise DataNotEncodable(f"data is a JSON {_kind(data)}, not an object")
            return Envelope.build(
                event_type, organization_id, data, id=event_id, timestamp=created_at
            )
        except (orjson.JSONDecodeError, DataNotEncodable) as exc:
            # Stored before events were checked on the way in, or changed since: the
            # clients are told and read on; the row itself is left for an operator.
            key = (organization_id, event_id)
            if key not in self._reported:
                if len(self._reported) >= MAX_REPORTED:
                    self._reported.clear()
                self._reported.add(key)
                log.error(
                    "event %d (%s) of organization %d cannot be sent, clients are told to "
                    "reload: %s",
                    event_id,
                    event_type,
                    organization_id,
                    exc,
                )
            return event_unreadable(event_id, event_type, organization_id)

    async def prune(self) -> int:
        """Delete events older than the retention period; answer how many."""
        cutoff = utcnow() - self.retention
        # A week of a busy organization's events may take longer to delete than a
        # request may wait: the prune has no statement timeout.
        async with self.db.unbounded_session() as session:
            result = await session.exec(delete(Event).where(col(Event.created_at) < cutoff))
            await session.commit()
        if result.rowcount:
            log.info("pruned %d events older than %s", result.rowcount, cutoff.isoformat())
        return int(result.rowcount or 0)

    async def prune_forever(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("pruning the outbox failed")
            await asyncio.sleep(PRUNE_EVERY_SECONDS)


def _kind(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
