"""The outbox as the realtime event log: replay after an id, newest id, retention."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import delete, func
from sqlmodel import col, select

from realtime.envelope import Envelope
from realtime.eventlog import ReplayTruncated

from ..db import Database
from ..models import Event, Organization, utcnow
from ..services.outbox import OutboxEvent

log = logging.getLogger("inbox.live")

REPLAY_PAGE = 1000


def envelope_of(event: Event | OutboxEvent) -> Envelope:
    return Envelope.build(
        event.type, event.organization_id, event.data, id=event.id, timestamp=event.created_at
    )


class OutboxLog:
    """Reads the ``events`` table; ids are dense per organization (1, 2, 3, ...)."""

    def __init__(self, db: Database, retention_days: int) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days)

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
                        select(Event)
                        .where(
                            col(Event.organization_id) == organization_id, col(Event.id) > cursor
                        )
                        .order_by(col(Event.id))
                        .limit(REPLAY_PAGE)
                    )
                )
            for event in rows:
                yield envelope_of(event)
            if len(rows) < REPLAY_PAGE:
                return
            cursor = rows[-1].id

    async def prune(self) -> int:
        """Delete events older than the retention period; answer how many."""
        cutoff = utcnow() - self.retention
        async with self.db.session() as session:
            result = await session.exec(delete(Event).where(col(Event.created_at) < cutoff))
            await session.commit()
        if result.rowcount:
            log.info("pruned %d events older than %s", result.rowcount, cutoff.isoformat())
        return int(result.rowcount or 0)
