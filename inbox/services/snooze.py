"""Snoozed conversations reopen by themselves when their time comes.

Each process runs a waker. It sleeps until the earliest snooze is due (at most
``MAX_SLEEP_SECONDS``, so a snooze set by another process is not missed for long) or
until a snooze set here wakes it, then reopens what is due, each conversation in a
unit of work of its own that tells every console with ``conversation.updated``.
The reopening is a conditional update: with several processes, each conversation is
reopened, and told, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import func, update
from sqlmodel import col, select

from ..db import Database
from ..events import EventType
from ..models import Conversation, utcnow
from ..views import load_conversation
from .outbox import EventSink, unit_of_work

log = logging.getLogger("inbox.snooze")

MAX_SLEEP_SECONDS = 30.0
# Reopened per pass; a pass with this many due runs again at once.
BATCH = 100


class SnoozeWaker:
    def __init__(
        self, db: Database, sink: EventSink, *, max_sleep: float = MAX_SLEEP_SECONDS
    ) -> None:
        self.db = db
        self.sink = sink
        self.max_sleep = max_sleep
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A snooze was set: look again now, its time may come before the next one."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            sleep = self.max_sleep
            # Cleared before the pass: a snooze set while it runs wakes the next wait.
            self._wake.clear()
            try:
                while await self.reopen_due() == BATCH:
                    pass
                sleep = await self._until_next()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reopening snoozed conversations failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)

    async def reopen_due(self) -> int:
        """Reopen the conversations whose snooze is over; answer how many were due."""
        now = utcnow()
        async with self.db.session() as session:
            due = list(
                await session.exec(
                    select(Conversation.id, Conversation.organization_id)
                    .where(
                        col(Conversation.status) == "snoozed",
                        col(Conversation.snoozed_until) <= now,
                    )
                    .order_by(col(Conversation.snoozed_until))
                    .limit(BATCH)
                )
            )
        for conversation_id, organization_id in due:
            assert conversation_id is not None
            await self.reopen(conversation_id, organization_id)
        return len(due)

    async def reopen(self, conversation_id: int, organization_id: int) -> bool:
        """Reopen one conversation if it is still snoozed and due; answer whether this
        call did (another process, an agent or the customer may have been first)."""
        async with unit_of_work(self.db, organization_id, self.sink) as tx:
            now = utcnow()
            reopened = await tx.session.exec(
                update(Conversation)
                .where(
                    col(Conversation.id) == conversation_id,
                    col(Conversation.status) == "snoozed",
                    col(Conversation.snoozed_until) <= now,
                )
                .values(status="open", snoozed_until=None, updated_at=now)
            )
            if reopened.rowcount != 1:
                return False
            public = await load_conversation(tx.session, conversation_id, organization_id)
            tx.emit(EventType.CONVERSATION_UPDATED, public.model_dump(mode="json"))
        log.info("conversation %s: snooze over, open again", conversation_id)
        return True

    async def _until_next(self) -> float:
        """Seconds until the earliest snooze is due, at most ``max_sleep``."""
        async with self.db.session() as session:
            earliest = await session.scalar(
                select(func.min(Conversation.snoozed_until)).where(
                    col(Conversation.status) == "snoozed"
                )
            )
        if earliest is None:
            return self.max_sleep
        return min(self.max_sleep, max(0.0, (earliest - utcnow()).total_seconds()))
