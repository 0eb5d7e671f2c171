"""Inbound: normalized platform events become contacts, conversations and messages.

One delivery is one unit of work, committed (possibly together with other
deliveries: ``group_commit``) before the route answers 200. Deliveries of plain
messages may also share their statements (``inbound_batch``); every other kind of
event is applied one delivery at a time (``inbound``).
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.types import InboundEvent

from ..models import Channel
from .group_commit import GroupCommit
from .inbound import PREVIEW_LENGTH, IngestResult, StoreDelivery
from .inbound_batch import runs_together, store_together, writes_under
from .text import storable_events

__all__ = ["PREVIEW_LENGTH", "IngestResult", "ingest"]


async def ingest(
    writer: GroupCommit, channel: Channel, events: Sequence[InboundEvent]
) -> IngestResult:
    """Store one delivery's events as one unit of work and record what changed.

    ``channel`` is read, never written: it may be a cached copy shared by deliveries.
    Every string PostgreSQL cannot hold (NUL, a lone surrogate) becomes U+FFFD here,
    once for both storing paths and the same on SQLite (``text``).
    """
    events = storable_events(events)
    work = StoreDelivery(channel, events)
    if not runs_together(events):
        return await writer.run(channel.organization_id, work)
    return await writer.run(
        channel.organization_id,
        work,
        together=store_together,
        keys=writes_under(channel.organization_id, events),
    )
