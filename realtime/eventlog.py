"""What realtime needs from the application's outbox: the newest id, and replay after an id."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from .envelope import Envelope


class ReplayTruncated(Exception):
    """The requested position is older than what the outbox keeps.

    Raise it from `EventLog.after` before yielding anything; the client is told with a
    `replay.truncated` frame and reloads its state another way.
    """


class EventLog(Protocol):
    async def latest_id(self, organization_id: int) -> int:
        """The id of the organization's newest stored event, 0 when there is none."""
        ...

    def after(self, organization_id: int, after_id: int) -> AsyncIterator[Envelope]:
        """Every stored event of the organization with id > after_id, in id order.

        Ids must become visible in increasing order within an organization (a later id is
        never committed before an earlier one): resuming from `last_event_id` relies on it.

        A stored event that cannot be turned into a frame (data that does not encode, a
        row that does not read) is yielded as `protocol.event_unreadable(...)` in its
        place, never raised: one bad event must cost its own delivery, not end every
        replay that reaches it.
        """
        ...


@asynccontextmanager
async def reading(
    log: EventLog, organization_id: int, after_id: int
) -> AsyncIterator[AsyncIterator[Envelope]]:
    """`log.after(...)`, closed when the block ends even if it stops early: a log that
    reads page by page holds a database connection until its iterator is closed."""
    events = log.after(organization_id, after_id)
    try:
        yield events
    finally:
        await close_iterator(events)


async def close_iterator(events: AsyncIterator[object]) -> None:
    """Close `events` if it can be closed: an EventLog may return any async iterator,
    and only generators have `aclose()`."""
    if isinstance(events, AsyncGenerator):
        await events.aclose()
