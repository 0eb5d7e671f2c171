"""Ingest: an arrival (one webhook delivery's normalized events) becomes contacts,
conversations and messages.

An arrival is one unit of work of the group commit, committed (possibly together
with other arrivals) before the route answers 200. Every arrival is stored by the
ingest core (`inbound_batch`), alone or in a batch of the arrivals queued with it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.types import InboundEvent, InboundMessage

from ..models import Channel
from .arrival import ArrivalRun, IngestResult
from .group_commit import GroupCommit, Work
from .inbound_batch import InboundBatch
from .outbox import UnitOfWork
from .text import storable_events
from .webhook_archive.record import Delivery, delivery_row, outcome_of
from .webhook_archive.rows import insert_rows

__all__ = ["Arrival", "IngestResult", "ingest", "store_arrivals", "writes_under"]


async def ingest(
    commits: GroupCommit,
    channel: Channel,
    events: Sequence[InboundEvent],
    *,
    archive: Delivery | None = None,
) -> IngestResult:
    """Store one arrival's events as one unit of work and record what changed.

    ``channel`` is read, never written: it may be a cached copy shared by arrivals.
    Every string PostgreSQL cannot hold (NUL, a lone surrogate) becomes U+FFFD here,
    the same on SQLite (``text``). ``archive``: the request, recorded in the same
    transaction with what became of it.
    """
    events = storable_events(events)
    if archive is not None:
        archive.found(channel.organization_id, channel.id)
    result = await commits.run(
        channel.organization_id,
        Arrival(channel, events, archive),
        together=store_arrivals,
        keys=writes_under(channel.organization_id, events),
    )
    if archive is not None:
        archive.committed = True
    return result


@dataclass(frozen=True)
class Arrival:
    """The unit of work of one arrival to ``channel``: a batch of one."""

    channel: Channel
    events: Sequence[InboundEvent]
    archive: Delivery | None = None

    async def __call__(self, tx: UnitOfWork) -> IngestResult:
        [result] = await store_arrivals([(tx, self)])
        return result


async def store_arrivals(units: Sequence[tuple[UnitOfWork, Work[Any]]]) -> list[IngestResult]:
    """`group_commit.Together` for `Arrival` units: one run of the ingest core.

    Each arrival gets the result and the events, in the same order, that it would
    have got alone after the arrivals queued before it."""
    runs = []
    for tx, work in units:
        assert isinstance(work, Arrival)
        runs.append(ArrivalRun(tx, work.channel, work.events))
    connection = await units[0][0].session.connection()
    results = await InboundBatch(connection, runs).run()
    archived = [
        delivery_row(work.archive, outcome_of(result))
        for (_, work), result in zip(units, results, strict=True)
        if isinstance(work, Arrival) and work.archive is not None
    ]
    if archived:
        await insert_rows(connection, archived)
    return results


def writes_under(
    organization_id: int, events: Sequence[InboundEvent]
) -> frozenset[Hashable] | None:
    """The keys an arrival writes under, for `GroupCommit.run`, when it holds only
    messages with platform ids: its senders (by each of their ids), whose contacts and
    conversations it may make or change, and their phone numbers, by which a new
    sender may join a contact made on another channel. None for any other arrival:
    it may write anything."""
    if not events:
        return None
    keys: set[Hashable] = set()
    for event in events:
        if not isinstance(event, InboundMessage) or event.external_id is None:
            return None
        keys.add((organization_id, event.platform, event.sender_id))
        if event.sender_user_id:
            # The same person, named by their other id in a message that hides the number.
            keys.add((organization_id, event.platform, event.sender_user_id))
        if event.sender_phone:
            keys.add((organization_id, "phone", event.sender_phone))
    return frozenset(keys)
