"""The transactional outbox: a change and the events describing it commit together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db import Database
from ..models import Event, Organization, utcnow

log = logging.getLogger("inbox.outbox")


class EventSink(Protocol):
    """Receives committed events; publishing must never undo or fail the commit."""

    async def publish(self, events: Sequence[Event]) -> None: ...


class NullSink:
    async def publish(self, events: Sequence[Event]) -> None:
        return None


class Transaction:
    def __init__(self, session: AsyncSession, organization_id: int) -> None:
        self.session = session
        self.organization_id = organization_id
        self.events: list[Event] = []

    def emit(self, type: str, data: dict[str, Any]) -> None:
        self.events.append(Event(organization_id=self.organization_id, id=0, type=type, data=data))

    async def _append_events(self) -> None:
        if not self.events:
            return
        # The row lock taken here is held until commit: event ids of one organization
        # are handed out, and become visible, strictly in order.
        bump = (
            update(Organization)
            .where(col(Organization.id) == self.organization_id)
            .values(last_event_id=col(Organization.last_event_id) + len(self.events))
            .returning(col(Organization.last_event_id))
        )
        last = (await self.session.exec(bump)).scalar_one()
        now = utcnow()
        for offset, event in enumerate(self.events, start=last - len(self.events) + 1):
            event.id = offset
            event.created_at = now
        self.session.add_all(self.events)
        await self.session.flush()


@asynccontextmanager
async def transaction(
    db: Database, organization_id: int, sink: EventSink
) -> AsyncIterator[Transaction]:
    """One unit of work: commit the change with its events, then publish them."""
    async with db.session(write=True) as session:
        tx = Transaction(session, organization_id)
        yield tx
        await tx._append_events()
        await session.commit()
    if tx.events:
        try:
            await sink.publish(tx.events)
        except Exception:
            # Stored is what counts: subscribers catch up from the outbox.
            log.exception("publishing %d committed events failed", len(tx.events))
