"""The transactional outbox: a change and the events describing it commit together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db import Database
from ..models import Event, utcnow

log = logging.getLogger("inbox.outbox")

# Namespace of the advisory locks that order event ids by commit, per organization.
_EVENT_LOCK_NAMESPACE = 0x1B0C


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
        self.events.append(Event(organization_id=self.organization_id, type=type, data=data))

    async def _append_events(self) -> None:
        if not self.events:
            return
        bind = self.session.bind
        if bind is not None and bind.dialect.name == "postgresql":
            # Held until commit, so a later id is never visible before an earlier one
            # of the same organization: a reader resuming "after id N" misses nothing.
            await self.session.exec(  # type: ignore[call-overload]
                text("SELECT pg_advisory_xact_lock(:ns, :org)"),
                params={"ns": _EVENT_LOCK_NAMESPACE, "org": self.organization_id},
            )
        now = utcnow()
        for event in self.events:
            event.created_at = now
        self.session.add_all(self.events)
        await self.session.flush()


@asynccontextmanager
async def transaction(
    db: Database, organization_id: int, sink: EventSink
) -> AsyncIterator[Transaction]:
    """One unit of work: commit the change with its events, then publish them."""
    async with db.session() as session:
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
