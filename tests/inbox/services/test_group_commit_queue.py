"""The commit queue forms batches whose keys are disjoint from those in flight,
in arrival order, with units of one key kept in theirs. No database."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

from inbox.services.group_commit.queue import Batch, CommitQueue, Unit
from inbox.services.outbox import UnitOfWork


async def nothing(_tx: UnitOfWork) -> None:
    return None


def unit(name: str, *keys: Hashable, anything: bool = False) -> Unit[Any]:
    """A unit under ``keys``; ``anything``: one that names none."""
    answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    named = None if anything else frozenset(keys)
    made: Unit[Any] = Unit(1, nothing, None, named, answer)
    made.value = name
    return made


def names(batch: Batch | None) -> list[str]:
    assert batch is not None
    return [u.value for u in batch.units]


def queued(*units: Unit[Any], max_batch: int = 64) -> CommitQueue:
    queue = CommitQueue(max_batch)
    for each in units:
        queue.put(each)
    return queue


async def test_with_nothing_in_flight_a_batch_takes_the_queue_in_order():
    queue = queued(unit("a", "x"), unit("b", "y"), unit("c", anything=True), unit("d", "x"))
    batch = queue.take([])
    assert names(batch) == ["a", "b", "c", "d"]
    assert batch is not None and batch.keys is None
    assert len(queue) == 0


async def test_a_batch_holds_at_most_max_batch_units():
    queue = queued(*(unit(str(n), n) for n in range(5)), max_batch=2)
    assert names(queue.take([])) == ["0", "1"]
    assert names(queue.take([])) == ["2", "3"]
    assert names(queue.take([])) == ["4"]
    assert queue.take([]) is None


async def test_beside_a_batch_only_units_of_other_keys_are_taken():
    in_flight = queued(unit("held", "a")).take([])
    assert in_flight is not None and in_flight.keys == frozenset({"a"})
    queue = queued(unit("same", "a"), unit("other", "b"))
    assert names(queue.take([in_flight])) == ["other"]
    # The one passed over keeps its place for the next batch.
    assert names(queue.take([])) == ["same"]


async def test_a_unit_sharing_a_key_with_one_passed_over_waits_too():
    in_flight = queued(unit("held", "a")).take([])
    assert in_flight is not None
    queue = queued(
        unit("same", "a"), unit("after", "a", "c"), unit("other", "c"), unit("free", "d")
    )
    assert names(queue.take([in_flight])) == ["free"]
    assert names(queue.take([])) == ["same", "after", "other"]


async def test_a_unit_naming_no_keys_runs_with_no_batch_beside_it():
    in_flight = queued(unit("held", "a")).take([])
    assert in_flight is not None
    queue = queued(unit("before", "b"), unit("anything", anything=True), unit("behind", "c"))
    # Taken up to it, and nothing behind it overtakes it.
    assert names(queue.take([in_flight])) == ["before"]
    assert queue.take([in_flight]) is None
    alone = queue.take([])
    assert names(alone) == ["anything", "behind"]
    # Nothing starts beside a batch that may write anything.
    assert alone is not None
    assert queued(unit("late", "z")).take([alone]) is None


async def test_a_unit_whose_caller_has_gone_is_dropped():
    gone = unit("gone", "a")
    gone.answer.cancel()
    queue = queued(gone, unit("kept", "a"))
    assert names(queue.take([])) == ["kept"]


async def test_cancel_all_tells_every_waiting_caller():
    waiting = [unit("a", "a"), unit("b", "b")]
    queue = queued(*waiting)
    queue.cancel_all()
    assert len(queue) == 0
    assert all(each.answer.cancelled() for each in waiting)
