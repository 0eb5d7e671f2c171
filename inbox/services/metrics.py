"""The live figures of an organization, computed once per change burst for every viewer.

A snapshot is a handful of indexed aggregate queries in one statement, and the median
of today's first replies read in index order. Writes only mark their organization
dirty; a snapshot is computed at most once per interval per organization and
published to every subscriber at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlmodel import col

from ..db import Database
from ..events import EventType
from ..models import Conversation, Lead, Message, Organization, table_of
from .analytics_counts import quantiles
from .analytics_ranges import Range, start_of_local_day
from .timers import Timers

log = logging.getLogger("inbox.metrics")
_CONVERSATIONS = table_of(Conversation).c

# Events after which some figure may have changed.
METRIC_EVENTS = frozenset(
    {
        EventType.MESSAGE_RECEIVED,
        EventType.MESSAGE_SENT,
        EventType.CONVERSATION_CREATED,
        EventType.CONVERSATION_UPDATED,
        EventType.LEAD_CREATED,
        EventType.LEAD_DELETED,
        EventType.CONTACT_DELETED,
        EventType.AGENT_STATUS,
    }
)


def start_of_day(now: datetime, zone: str = "UTC") -> datetime:
    """When ``now``'s day began in the IANA zone ``zone`` (UTC for a name it lacks)."""
    try:
        return start_of_local_day(now, ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def snapshot(db: Database, org_id: int, agents_online: int) -> dict[str, Any]:
    """The organization's figures now; "today" is the day in its time zone."""
    async with db.session() as session:
        zone = await session.scalar(
            select(col(Organization.timezone)).where(col(Organization.id) == org_id)
        )
    now = datetime.now(UTC)
    today = start_of_day(now, zone or "UTC")

    def conversations(status: str) -> Any:
        return (
            select(func.count())
            .where(col(Conversation.organization_id) == org_id, col(Conversation.status) == status)
            .scalar_subquery()
        )

    def messages(direction: str) -> Any:
        stmt = select(func.count()).where(
            col(Message.organization_id) == org_id,
            col(Message.created_at) >= today,
            col(Message.direction) == direction,
        )
        if direction == "outbound":
            stmt = stmt.where(col(Message.private).is_(False))
        return stmt.scalar_subquery()

    query = select(
        conversations("open"),
        conversations("pending"),
        select(func.coalesce(func.sum(Conversation.unread_count), 0))
        .where(col(Conversation.organization_id) == org_id, col(Conversation.status) != "closed")
        .scalar_subquery(),
        messages("inbound"),
        messages("outbound"),
        select(func.count())
        .where(col(Lead.organization_id) == org_id, col(Lead.created_at) >= today)
        .scalar_subquery(),
        select(func.avg(Conversation.first_response_seconds))
        .where(
            col(Conversation.organization_id) == org_id,
            col(Conversation.first_response_at) >= today,
        )
        .scalar_subquery(),
        select(func.count())
        .where(
            col(Conversation.organization_id) == org_id,
            col(Conversation.status).in_(("open", "pending")),
            col(Conversation.assignee_id).is_(None),
        )
        .scalar_subquery(),
    )
    c = _CONVERSATIONS
    # Today's first replies only, read in the order of an index: bounded by the day.
    today_so_far = Range(today, now + timedelta(seconds=1), ZoneInfo("UTC"))
    async with db.session() as session:
        # Run by Core on the session's connection: sqlmodel's `exec` types no select
        # of eight columns.
        connection = await session.connection()
        row = (await connection.execute(query)).one()
        first = await quantiles(
            connection,
            c.first_response_seconds,
            c.first_response_at,
            c.organization_id,
            org_id,
            today_so_far,
        )
    avg = row[6]
    median = first.get(None, (None, None, 0))[0]
    return {
        "open_conversations": int(row[0]),
        "pending_conversations": int(row[1]),
        "unread_messages": int(row[2]),
        "messages_today_inbound": int(row[3]),
        "messages_today_outbound": int(row[4]),
        "leads_today": int(row[5]),
        "agents_online": agents_online,
        "avg_first_response_seconds_today": round(float(avg), 1) if avg is not None else None,
        "unassigned_conversations": int(row[7]),
        "median_first_response_seconds_today": round(median, 1) if median is not None else None,
    }


class LiveMetrics:
    """Coalesces "something changed" into at most one snapshot per interval per org."""

    def __init__(
        self,
        db: Database,
        publish: Callable[[int, dict[str, Any]], Awaitable[None]],
        agents_online: Callable[[int], Awaitable[int]],
        *,
        interval: float = 1.0,
    ) -> None:
        self.db = db
        self.publish = publish
        self.agents_online = agents_online
        self.interval = interval
        self._last: dict[int, float] = {}
        self._timers = Timers()
        self._pending: dict[int, asyncio.TimerHandle | asyncio.Task[None]] = {}
        # Touched while their snapshot was being computed: it may predate the change.
        self._again: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def current(self, org_id: int) -> dict[str, Any]:
        return await snapshot(self.db, org_id, await self.agents_online(org_id))

    def touch(self, org_id: int) -> None:
        pending = self._pending.get(org_id)
        if isinstance(pending, asyncio.Task):
            # Its queries may have run before this change committed: compute once more
            # after it, or the last update would not show the last change.
            self._again.add(org_id)
            return
        if pending is not None:
            return
        wait = self._last.get(org_id, 0.0) + self.interval - time.monotonic()
        timer = self._timers.later(wait, lambda: self._fire(org_id))
        if timer is not None:
            self._pending[org_id] = timer

    def _fire(self, org_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._emit(org_id))
        self._pending[org_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, org_id: int) -> None:
        self._last[org_id] = time.monotonic()
        try:
            await self.publish(org_id, await self.current(org_id))
        except Exception:
            log.exception("metrics for organization %s failed", org_id)
        finally:
            self._pending.pop(org_id, None)
            if org_id in self._again:
                self._again.discard(org_id)
                self.touch(org_id)

    async def close(self) -> None:
        self._timers.close()
        for task in list(self._tasks):
            task.cancel()
        self._pending.clear()
