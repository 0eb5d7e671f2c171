"""From the outbox to delivery rows: each endpoint's cursor moves with the rows it made."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, cast, insert, select, update
from sqlmodel import col

from realtime.envelope import Envelope

from ...db import Database
from ...models import Event, Organization, WebhookDelivery, WebhookEndpoint, table_of, utcnow

log = logging.getLogger("inbox.webhooks")

# Events taken per endpoint per transaction.
BATCH = 1000
ALL = "*"

_ENDPOINTS = table_of(WebhookEndpoint)
_DELIVERIES = table_of(WebhookDelivery)


def wanted(events: list[str], event_type: str) -> bool:
    return ALL in events or event_type in events


def envelope_text(
    organization_id: int,
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: int | None,
    timestamp: datetime | None,
) -> str:
    """The event as /ws sends it: the body of every attempt."""
    return Envelope.build(event_type, organization_id, data, id=event_id, timestamp=timestamp).text


async def behind(db: Database) -> list[tuple[int, int, int, list[str], int]]:
    """Active endpoints whose organization has events past their cursor:
    (endpoint id, organization id, cursor, event types, the organization's last id)."""
    async with db.session() as session:
        rows = await (await session.connection()).execute(
            select(
                _ENDPOINTS.c.id,
                _ENDPOINTS.c.organization_id,
                _ENDPOINTS.c.cursor,
                _ENDPOINTS.c.events,
                col(Organization.last_event_id),
            )
            .join(Organization, col(Organization.id) == _ENDPOINTS.c.organization_id)
            .where(_ENDPOINTS.c.active, col(Organization.last_event_id) > _ENDPOINTS.c.cursor)
        )
        return [(r[0], r[1], r[2], list(r[3]), r[4]) for r in rows]


async def fan_out(db: Database) -> dict[int, int]:
    """Make delivery rows for every endpoint that is behind; answer how many, by
    endpoint (only those it made some for)."""
    made: dict[int, int] = {}
    # An event wanted by several endpoints is made into its envelope once.
    envelopes: dict[int, str | None] = {}
    for endpoint_id, org_id, cursor, types, last_id in await behind(db):
        count = await take(db, endpoint_id, org_id, cursor, types, last_id, envelopes)
        if count:
            made[endpoint_id] = count
    return made


async def take(
    db: Database,
    endpoint_id: int,
    org_id: int,
    cursor: int,
    types: list[str],
    last_id: int,
    envelopes: dict[int, str | None] | None = None,
) -> int:
    """One batch of events after ``cursor`` for one endpoint; 0 when another process
    moved the cursor first (its rows stand, these are not made)."""
    now = utcnow()
    envelopes = {} if envelopes is None else envelopes
    async with db.session(write=True) as session:
        events = list(
            await (await session.connection()).execute(
                select(
                    col(Event.id),
                    col(Event.type),
                    col(Event.created_at),
                    cast(col(Event.data), Text),
                )
                .where(col(Event.organization_id) == org_id, col(Event.id) > cursor)
                .order_by(col(Event.id))
                .limit(BATCH)
            )
        )
        # None left after the cursor although the counter is past it: pruned by the
        # retention period while the endpoint was behind.
        moved_to = events[-1][0] if events else last_id
        rows = [
            {
                "organization_id": org_id,
                "endpoint_id": endpoint_id,
                "event_id": event_id,
                "event_type": event_type,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for event_id, event_type, created, text in events
            if wanted(types, event_type)
            and (payload := _envelope(envelopes, org_id, event_id, event_type, created, text))
        ]
        moved = await (await session.connection()).execute(
            update(_ENDPOINTS)
            .where(_ENDPOINTS.c.id == endpoint_id, _ENDPOINTS.c.cursor == cursor)
            .values(cursor=moved_to)
        )
        if moved.rowcount != 1:
            await session.rollback()
            return 0
        if rows:
            await (await session.connection()).execute(insert(_DELIVERIES), rows)
        await session.commit()
    return len(rows)


def _envelope(
    made: dict[int, str | None],
    org_id: int,
    event_id: int,
    event_type: str,
    created: datetime,
    text: str,
) -> str | None:
    if event_id not in made:
        if len(made) > 10 * BATCH:  # one pass over many endpoints: bounded all the same
            made.clear()
        made[event_id] = _stored_envelope(org_id, event_id, event_type, created, text)
    return made[event_id]


def _stored_envelope(
    org_id: int, event_id: int, event_type: str, created: datetime, text: str
) -> str | None:
    try:
        data = orjson.loads(text)
        if not isinstance(data, dict):
            raise ValueError("data is not an object")
        return envelope_text(org_id, event_type, data, event_id=event_id, timestamp=created)
    except ValueError as exc:
        # Stored before events were checked on the way in: skipped, not a stuck endpoint.
        log.error("event %d of organization %d cannot be sent: %s", event_id, org_id, exc)
        return None
