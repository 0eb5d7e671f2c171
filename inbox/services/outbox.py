"""The transactional outbox: a change and the events describing it commit together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    Text,
    bindparam,
    insert,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel.ext.asyncio.session import AsyncSession

from realtime.envelope import DataNotEncodable, encode_data

from ..db import Database
from ..events import EventType
from ..models import Event, Organization, table_of, utcnow
from .lock_order import lock_for_writing

log = logging.getLogger("inbox.outbox")


class UnencodableEvent(Exception):
    """An event whose data can never be sent as a frame: it is refused before it is
    stored, and the unit of work that emitted it fails with it."""


@dataclass(slots=True)
class OutboxEvent:
    """An event on its way into the outbox; `append_events` numbers and stamps it.

    Not an `Event` row: it is written with one Core insert and then only published,
    and a plain object costs a fraction of an ORM instance to make.
    """

    organization_id: int
    type: str
    data: dict[str, Any]
    # `data` as frames carry it (`realtime.envelope.encode_data`), encoded once when
    # the event is emitted: stored as this text, and published as these bytes.
    encoded: bytes
    id: int = 0
    created_at: datetime | None = None


def outbox_event(organization_id: int, type: str, data: dict[str, Any]) -> OutboxEvent:
    """An event whose data is known to encode; UnencodableEvent otherwise.

    Encoding it is the check: an event stored that could not be encoded would fail
    every replay that reaches it, for as long as the outbox keeps it.
    """
    try:
        encoded = encode_data(data)
    except DataNotEncodable as exc:
        raise UnencodableEvent(f"{type} event data cannot be encoded as JSON: {exc}") from None
    return OutboxEvent(organization_id, type, data, encoded)


class EventSink(Protocol):
    """Receives committed events; publishing must never undo or fail the commit."""

    async def publish(self, events: Sequence[OutboxEvent]) -> None: ...


class NullSink:
    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        return None


class UnitOfWork:
    """One use case's share of a write: the session it writes through (possibly shared
    with other units in a group commit), its organization, and the events it emits."""

    def __init__(self, session: AsyncSession, organization_id: int) -> None:
        self.session = session
        self.organization_id = organization_id
        self.events: list[OutboxEvent] = []

    def emit(self, type: EventType, data: dict[str, Any]) -> None:
        """Add an event to this unit of work; UnencodableEvent (and so the unit fails,
        nothing of it committed) if its data cannot be sent.

        ``data`` is encoded now: it must not change afterwards.
        """
        self.events.append(outbox_event(self.organization_id, type, data))


async def append_events(session: AsyncSession, events: Sequence[OutboxEvent]) -> None:
    """Number ``events`` (in the order given) and add them to the outbox.

    Each organization's counter is bumped once for all of its events. The row lock
    taken here is held until commit: event ids of one organization are handed out,
    and become visible, strictly in order. Organizations are locked in id order so
    that two transactions naming the same ones cannot deadlock.
    """
    if not events:
        return
    # Core statements on the session's connection: the ORM's bulk handling of them
    # would only add cost.
    connection = await session.connection()
    now = utcnow()
    by_org = sorted(events, key=lambda e: e.organization_id)  # stable: keeps each org's order
    groups = [(org_id, list(group)) for org_id, group in groupby(by_org, key=_organization)]
    if connection.dialect.name == "postgresql":
        # One statement, and so one round trip, per organization instead of two.
        for org_id, numbered in groups:
            result = await connection.execute(
                _APPEND_POSTGRES,
                {
                    "org_id": org_id,
                    "n": len(numbered),
                    "types": [e.type for e in numbered],
                    "datas": [e.encoded.decode() for e in numbered],
                    "now": now,
                },
            )
            _number(numbered, min(result.scalars()), now)
        return
    for org_id, numbered in groups:
        result = await connection.execute(_BUMP, {"org_id": org_id, "n": len(numbered)})
        _number(numbered, result.scalar_one() - len(numbered) + 1, now)
    await connection.execute(
        _INSERT_EVENTS,
        [
            {
                "organization_id": e.organization_id,
                "id": e.id,
                "type": e.type,
                "data_json": e.encoded.decode(),
                "created_at": e.created_at,
            }
            for e in events
        ],
    )


# Built once: making a statement costs more than running it from the compiled cache.
_ORGANIZATIONS = table_of(Organization)
_BUMP = (
    update(_ORGANIZATIONS)
    .where(_ORGANIZATIONS.c.id == bindparam("org_id"))
    .values(last_event_id=_ORGANIZATIONS.c.last_event_id + bindparam("n", type_=BigInteger))
    .returning(_ORGANIZATIONS.c.last_event_id)
)
# The data goes in as the text it was encoded to, not through the JSON column's own
# serializer: encoded once, the same bytes stored and published.
_INSERT_EVENTS = insert(table_of(Event)).values(data=bindparam("data_json", type_=Text))

# The counter bump and the insert of the events it numbers, in one statement.
_APPEND_POSTGRES = (
    text(
        "WITH bump AS (UPDATE organizations SET last_event_id = last_event_id + :n"
        " WHERE id = :org_id RETURNING last_event_id)"
        " INSERT INTO events (organization_id, id, type, data, created_at)"
        " SELECT :org_id, bump.last_event_id - :n + e.ord, e.type, e.data::jsonb, :now"
        " FROM bump, unnest(:types, :datas) WITH ORDINALITY AS e(type, data, ord)"
        " RETURNING id"
    )
    .bindparams(
        bindparam("org_id", type_=Integer),
        bindparam("n", type_=BigInteger),
        bindparam("types", type_=ARRAY(String)),
        bindparam("datas", type_=ARRAY(Text)),
        bindparam("now", type_=DateTime(timezone=True)),
    )
    .columns(id=BigInteger)
)


def _organization(event: OutboxEvent) -> int:
    return event.organization_id


def _number(events: list[OutboxEvent], first: int, now: datetime) -> None:
    for event_id, event in enumerate(events, start=first):
        event.id = event_id
        event.created_at = now


async def commit_with_events(session: AsyncSession, events: Sequence[OutboxEvent]) -> None:
    """Add ``events`` to the outbox (`append_events`) and commit them with the change:
    how every write transaction ends, a group commit's batch or a single change."""
    await append_events(session, events)
    await session.commit()


async def publish_committed(sink: EventSink, events: Sequence[OutboxEvent]) -> None:
    """Tell subscribers of events already committed; never fails the commit."""
    if not events:
        return
    try:
        await sink.publish(events)
    except Exception:
        # Stored is what counts: subscribers catch up from the outbox.
        log.exception("publishing %d committed events failed", len(events))


@asynccontextmanager
async def unit_of_work(
    db: Database, organization_id: int, sink: EventSink
) -> AsyncIterator[UnitOfWork]:
    """One unit of work in a transaction of its own: commit its change with its events,
    then publish them."""
    async with db.session(write=True) as session:
        # Before any row: the organization to itself (see lock_order).
        await lock_for_writing(session, [organization_id])
        tx = UnitOfWork(session, organization_id)
        yield tx
        await commit_with_events(session, tx.events)
    await publish_committed(sink, tx.events)
