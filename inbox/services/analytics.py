"""The analytics reports: an overview of a range, a metric's trend, the agents' figures."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from ..errors import field_error
from ..models import Channel, Contact, Conversation, Lead, User, table_of
from .analytics_counts import (
    CHANNEL,
    SLOT,
    USER,
    by_slot,
    counts_by,
    message_counts,
    quantiles,
    slot_start,
)
from .analytics_medians import bucket_medians
from .analytics_ranges import Interval, Range, bucket_index, buckets, local_iso

Metric = Literal[
    "messages_received",
    "messages_sent",
    "conversations_opened",
    "conversations_closed",
    "leads_created",
    "contacts_created",
    "first_response_seconds",
]
METRICS: tuple[Metric, ...] = (
    "messages_received",
    "messages_sent",
    "conversations_opened",
    "conversations_closed",
    "leads_created",
    "contacts_created",
    "first_response_seconds",
)
# Leads and contacts belong to no channel.
CHANNEL_METRICS = frozenset(METRICS) - {"leads_created", "contacts_created"}
VIEWER = "viewer"

_CONV = table_of(Conversation).c
_LEADS = table_of(Lead).c
_CONTACTS = table_of(Contact).c


def _stats(figures: tuple[float | None, float | None, int] | None) -> dict[str, Any]:
    median, p90, count = figures or (None, None, 0)
    return {"median": _round(median), "p90": _round(p90), "count": count}


def _round(value: float | None) -> float | None:
    # Whole milliseconds: a mean of two floats, or a backfill's date arithmetic.
    return None if value is None else round(value, 3)


def _in(at: Any, span: Range) -> list[ColumnElement[bool]]:
    return [at >= span.start, at < span.end]


async def overview(connection: AsyncConnection, org_id: int, span: Range) -> dict[str, Any]:
    messages = await message_counts(connection, org_id, span, [CHANNEL])
    c = _CONV
    opened = await counts_by(
        connection, c.created_at, c.organization_id, org_id, span, [c.channel_id]
    )
    closed = await counts_by(connection, c.closed_at, c.organization_id, org_id, span)
    ours = c.organization_id == org_id
    now = (
        await connection.execute(
            select(
                func.count().filter(c.status == "open"),
                func.count().filter(c.status == "pending"),
                func.count().filter(c.status.in_(("open", "pending")), c.assignee_id.is_(None)),
            ).where(ours, c.status.in_(("open", "pending")))
        )
    ).one()
    contacts = await counts_by(
        connection, _CONTACTS.created_at, _CONTACTS.organization_id, org_id, span
    )
    leads = await counts_by(connection, _LEADS.created_at, _LEADS.organization_id, org_id, span)
    converted = await counts_by(
        connection, _LEADS.converted_at, _LEADS.organization_id, org_id, span
    )
    first = await quantiles(
        connection, c.first_response_seconds, c.first_response_at, c.organization_id, org_id, span
    )
    resolution = await quantiles(
        connection, c.resolution_seconds, c.closed_at, c.organization_id, org_id, span
    )
    channels = await connection.execute(
        select(col(Channel.id), col(Channel.kind), col(Channel.name))
        .where(col(Channel.organization_id) == org_id)
        .order_by(col(Channel.id))
    )
    leads_created, leads_converted = leads.get((), 0), converted.get((), 0)
    return {
        "range": _range(span),
        "conversations": {
            "opened": sum(opened.values()),
            "closed": closed.get((), 0),
            "open_now": int(now[0]),
            "pending_now": int(now[1]),
            "unassigned_now": int(now[2]),
        },
        "messages": {
            "received": sum(r for r, _ in messages.values()),
            "sent": sum(s for _, s in messages.values()),
        },
        "contacts": {"created": contacts.get((), 0)},
        "leads": {
            "created": leads_created,
            "converted": leads_converted,
            # Conversions in the range over creations in it: a lead converted today may
            # have come last month, so this is a rate of the period, not of a cohort.
            "conversion_rate": round(leads_converted / leads_created, 4) if leads_created else None,
        },
        "first_response_seconds": _stats(first.get(None)),
        "resolution_seconds": _stats(resolution.get(None)),
        "by_channel": [
            {
                "channel_id": channel_id,
                "kind": kind,
                "name": name,
                "received": messages.get((channel_id,), (0, 0))[0],
                "sent": messages.get((channel_id,), (0, 0))[1],
                "conversations_opened": opened.get((channel_id,), 0),
            }
            for channel_id, kind, name in channels
        ],
    }


def _range(span: Range) -> dict[str, Any]:
    return {
        "from": local_iso(span.start, span.zone),
        "to": local_iso(span.end, span.zone),
        "timezone": span.timezone,
    }


async def trends(
    connection: AsyncConnection,
    org_id: int,
    span: Range,
    metric: Metric,
    interval: Interval,
    channel_id: int | None,
) -> dict[str, Any]:
    if channel_id is not None and metric not in CHANNEL_METRICS:
        raise field_error("channel_id", f"{metric} belongs to no channel: leave channel_id out")
    bounds = buckets(span, interval)
    values: list[Any] = [0] * (len(bounds) - 1)
    if metric in ("messages_received", "messages_sent"):
        counts = await message_counts(connection, org_id, span, [SLOT], channel_id)
        which = 0 if metric == "messages_received" else 1
        for (slot,), pair in counts.items():
            values[bucket_index(bounds, slot_start(slot))] += pair[which]
    elif metric == "first_response_seconds":
        medians = await bucket_medians(connection, org_id, span, bounds, channel_id)
        values = [_round(m) for m in medians]
    else:
        table, at = {
            "conversations_opened": (_CONV, _CONV.created_at),
            "conversations_closed": (_CONV, _CONV.closed_at),
            "leads_created": (_LEADS, _LEADS.created_at),
            "contacts_created": (_CONTACTS, _CONTACTS.created_at),
        }[metric]
        where = [table.channel_id == channel_id] if channel_id is not None else []
        counted = await counts_by(
            connection, at, table.organization_id, org_id, span, [by_slot(connection, at)], where
        )
        for (slot_number,), n in counted.items():
            values[bucket_index(bounds, slot_start(int(slot_number)))] += n
    return {
        "metric": metric,
        "interval": interval,
        "timezone": span.timezone,
        "points": [
            {"start": local_iso(start, span.zone), "value": value}
            for start, value in zip(bounds, values, strict=False)
        ],
    }


async def agents(
    connection: AsyncConnection, org_id: int, span: Range, online: set[int]
) -> list[dict[str, Any]]:
    c = _CONV
    sent = await message_counts(connection, org_id, span, [USER])
    assigned = await counts_by(
        connection, c.created_at, c.organization_id, org_id, span, [c.assignee_id]
    )
    closed = await counts_by(
        connection, c.closed_at, c.organization_id, org_id, span, [c.assignee_id]
    )
    first = await quantiles(
        connection,
        c.first_response_seconds,
        c.first_response_at,
        c.organization_id,
        org_id,
        span,
        group=c.first_responder_id,
    )
    users = await connection.execute(
        select(col(User.id), col(User.name))
        .where(
            col(User.organization_id) == org_id,
            col(User.role) != VIEWER,
            col(User.is_active).is_(True),
        )
        .order_by(col(User.id))
    )
    return [
        {
            "user_id": user_id,
            "name": name,
            "conversations_assigned": assigned.get((user_id,), 0),
            "conversations_closed": closed.get((user_id,), 0),
            "messages_sent": sent.get((user_id,), (0, 0))[1],
            "first_response_seconds_median": _round(first.get(user_id, (None, None, 0))[0]),
            "online": user_id in online,
        }
        for user_id, name in users
    ]
