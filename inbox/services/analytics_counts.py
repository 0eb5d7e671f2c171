"""The figures the analytics reports are built from, each one statement.

Message counts come from the rollups for the whole quarter hours of a range and
from the messages themselves for the partial quarter hours at its edges, so a
range that starts at any instant is still counted exactly. Everything else is
counted from its own table through an index on (organization, instant).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import AgentRollup, Message, MessageRollup, table_of
from ..models.analytics import SLOT_SECONDS
from .analytics_ranges import Range
from .rollups import slot_column

_CHANNELS = table_of(MessageRollup).c
_AGENTS = table_of(AgentRollup).c
_MESSAGES = table_of(Message).c

# What a message count may be grouped by.
SLOT, CHANNEL, USER = "slot", "channel", "user"


def slot_start(slot: int) -> datetime:
    return datetime.fromtimestamp(slot * SLOT_SECONDS, UTC)


def _whole_slots(span: Range) -> tuple[int, int]:
    """The first and past-the-last quarter hour lying wholly within the range."""
    first = math.ceil(span.start.timestamp() / SLOT_SECONDS)
    last = math.floor(span.end.timestamp() / SLOT_SECONDS)
    return first, max(first, last)


async def message_counts(
    connection: AsyncConnection,
    org_id: int,
    span: Range,
    by: Sequence[str],
    channel_id: int | None = None,
) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(received, sent) per key: the slot and the channel id in the order of ``by``,
    or the user id alone (what each user sent). Private notes are not sent."""
    first, last = _whole_slots(span)
    if list(by) == [USER]:
        agents = _AGENTS
        stmt = select(agents.user_id, literal(0), func.sum(agents.sent))
        rolled_org, rolled_slot = agents.organization_id, agents.slot
        columns: list[Any] = [agents.user_id]
    else:
        rolled = _CHANNELS
        keys = {SLOT: rolled.slot, CHANNEL: rolled.channel_id}
        columns = [keys[name] for name in by]
        stmt = select(*columns, func.sum(rolled.received), func.sum(rolled.sent))
        rolled_org, rolled_slot = rolled.organization_id, rolled.slot
        if channel_id is not None:
            stmt = stmt.where(rolled.channel_id == channel_id)
    stmt = stmt.where(rolled_org == org_id, rolled_slot >= first, rolled_slot < last)
    totals: dict[tuple[int, ...], list[int]] = defaultdict(lambda: [0, 0])
    for row in await connection.execute(stmt.group_by(*columns)):
        entry = totals[tuple(int(v) for v in row[: len(by)])]
        entry[0] += int(row[-2] or 0)
        entry[1] += int(row[-1] or 0)
    edges = [
        (span.start, min(span.end, slot_start(first))),
        (max(span.start, slot_start(last)), span.end),
    ]
    for key, counts in (await _raw_counts(connection, org_id, edges, by, channel_id)).items():
        entry = totals[key]
        entry[0] += counts[0]
        entry[1] += counts[1]
    return {key: (r, s) for key, (r, s) in totals.items() if r or s}


async def _raw_counts(
    connection: AsyncConnection,
    org_id: int,
    edges: list[tuple[datetime, datetime]],
    by: Sequence[str],
    channel_id: int | None,
) -> dict[tuple[int, ...], tuple[int, int]]:
    edges = [(lo, hi) for lo, hi in edges if lo < hi]
    if not edges:
        return {}
    m = _MESSAGES
    keys: dict[str, ColumnElement[Any]] = {
        SLOT: slot_column(connection.dialect.name, m.created_at),
        CHANNEL: m.channel_id,
        USER: func.coalesce(m.sender_user_id, literal(0)),
    }
    columns = [keys[name] for name in by]
    sent = (m.direction == "outbound") & m.private.is_(False)
    stmt = select(
        *columns,
        func.sum(case((m.direction == "inbound", 1), else_=0)),
        func.sum(case((sent, 1), else_=0)),
    ).where(
        m.organization_id == org_id,
        or_(*(and_(m.created_at >= lo, m.created_at < hi) for lo, hi in edges)),
    )
    if channel_id is not None:
        stmt = stmt.where(m.channel_id == channel_id)
    if USER in by:
        stmt = stmt.where(m.sender_user_id.is_not(None))
    return {
        tuple(int(v) for v in row[: len(by)]): (int(row[-2] or 0), int(row[-1] or 0))
        for row in await connection.execute(stmt.group_by(*columns))
    }


async def counts_by(
    connection: AsyncConnection,
    at: Any,
    org: Any,
    org_id: int,
    span: Range,
    by: Sequence[ColumnElement[Any]] = (),
    where: Sequence[ColumnElement[bool]] = (),
) -> dict[tuple[Any, ...], int]:
    """Rows of a table whose instant ``at`` lies in the range, counted per ``by``."""
    stmt = select(*by, func.count()).where(org == org_id, at >= span.start, at < span.end, *where)
    if by:
        stmt = stmt.group_by(*by)
    return {tuple(row[:-1]): int(row[-1]) for row in await connection.execute(stmt)}


def by_slot(connection: AsyncConnection, at: Any) -> ColumnElement[int]:
    return slot_column(connection.dialect.name, at)


async def quantiles(
    connection: AsyncConnection,
    value: Any,
    at: Any,
    org: Any,
    org_id: int,
    span: Range,
    group: Any | None = None,
) -> dict[Any, tuple[float | None, float | None, int]]:
    """(median, p90, count) of ``value`` over the rows whose instant ``at`` lies in the
    range, per ``group`` (one None key without one).

    The median of an even count is the mean of the two middle values; p90 is the
    nearest rank, the value at position ceil(0.9 n). PostgreSQL ranks with its
    ordered-set aggregates; SQLite reads the middle and the 90th row of an index kept
    in the order of the value.
    """
    keys = [group] if group is not None else []
    if connection.dialect.name == "postgresql":
        stmt = select(
            *keys,
            func.percentile_cont(0.5).within_group(value),
            func.percentile_disc(0.9).within_group(value),
            func.count(value),
        ).where(org == org_id, at >= span.start, at < span.end, value.is_not(None))
        rows = await connection.execute(stmt.group_by(*keys) if keys else stmt)
        return {
            (row[0] if keys else None): (_float(row[-3]), _float(row[-2]), int(row[-1]))
            for row in rows
            if row[-1]
        }
    # The instant is wrapped so that SQLite walks the index ordered by the value
    # instead of sorting what the index on the instant finds.
    wrapped = func.coalesce(at, at)
    where: list[ColumnElement[bool]] = [
        org == org_id,
        wrapped >= span.start,
        wrapped < span.end,
        value.is_not(None),
    ]
    counted = select(*keys, func.count()).where(*where)
    totals = {
        (row[0] if keys else None): int(row[-1])
        for row in await connection.execute(counted.group_by(*keys) if keys else counted)
        if row[-1]
    }
    result: dict[Any, tuple[float | None, float | None, int]] = {}
    for key, n in totals.items():
        mine: list[ColumnElement[bool]] = [group == key] if group is not None else []
        ordered = select(value).where(*where, *mine).order_by(value)
        middle = [
            float(v)
            for v in (
                await connection.execute(ordered.limit(2 - n % 2).offset((n - 1) // 2))
            ).scalars()
        ]
        p90 = await connection.scalar(ordered.limit(1).offset((9 * n + 9) // 10 - 1))
        result[key] = (sum(middle) / len(middle), _float(p90), n)
    return result


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

