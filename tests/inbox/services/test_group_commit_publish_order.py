"""Batches publish in the order they committed, one after the other, and a sink that
fails costs nothing but the publication."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from inbox.events import EventType
from inbox.services.group_commit.publish_order import PublishOrder
from inbox.services.outbox import OutboxEvent, outbox_event


def events(*ids: int) -> list[OutboxEvent]:
    made = [outbox_event(1, EventType.MESSAGE_RECEIVED, {"n": n}) for n in ids]
    for event, event_id in zip(made, ids, strict=True):
        event.id = event_id
    return made


class Gate:
    """A sink whose first publication waits until let go."""

    def __init__(self) -> None:
        self.published: list[list[int]] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def publish(self, batch: Sequence[OutboxEvent]) -> None:
        if not self.published and not self.release.is_set():
            self.entered.set()
            await self.release.wait()
        self.published.append([e.id for e in batch])


async def test_a_later_batch_waits_for_the_one_committed_before_it():
    sink = Gate()
    order = PublishOrder(sink)
    first = asyncio.ensure_future(order.publish(events(1, 2)))
    await sink.entered.wait()
    second = asyncio.ensure_future(order.publish(events(3)))
    await asyncio.sleep(0)
    assert sink.published == []
    sink.release.set()
    await asyncio.gather(first, second)
    assert sink.published == [[1, 2], [3]]


async def test_a_batch_without_events_keeps_its_place_and_publishes_nothing():
    sink = Gate()
    sink.release.set()
    order = PublishOrder(sink)
    await order.publish([])
    await order.publish(events(1))
    assert sink.published == [[1]]


async def test_a_failing_sink_fails_no_commit(caplog):
    class Broken:
        async def publish(self, batch: Sequence[OutboxEvent]) -> None:
            raise ConnectionError("broker gone")

    order = PublishOrder(Broken())
    await order.publish(events(1))
    await order.publish(events(2))
    assert "publishing 1 committed events failed" in caplog.text
