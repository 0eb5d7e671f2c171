"""The group commit itself: takes batches off the queue and commits them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable
from types import TracebackType
from typing import Self, TypeVar

from ...db import Database
from ...telemetry.context import joined, request_id
from ...telemetry.metrics import BATCH_SIZE, COMMIT_DURATION
from ..outbox import EventSink
from .key_check import wanted
from .publish_order import PublishOrder
from .queue import Batch, CommitQueue, Together, Unit, Work
from .retry import commit_batch

T = TypeVar("T")

log = logging.getLogger("inbox.group_commit")

# Bounds a batch's transaction (and so the wait of its first caller, and the time
# row locks are held on PostgreSQL).
MAX_BATCH = 64
# Turns of the event loop let pass before a batch is taken: a webhook's unit reaches
# the queue a few turns after its last bytes do (the protocol, the app's task, the
# route), and the requests already in hand join the batch meanwhile.
GATHER_TURNS = 3


class GroupCommit:
    """One per process for the units of work that may share a commit.

    It runs on the loop it was started on: ``async with GroupCommit(db, sink) as
    commits:`` starts it and closes it on exit; the application's lifespan calls
    `start` and `close` instead. A unit given to one never started is refused.
    """

    def __init__(
        self,
        db: Database,
        sink: EventSink,
        *,
        max_batch: int = MAX_BATCH,
        in_flight: int | None = None,
        check_keys: bool | None = None,
    ) -> None:
        self.db = db
        self.in_flight = db.writer_connections if in_flight is None else in_flight
        # Whether every run's writes are checked against its keys (`key_check`).
        self.check_keys = wanted() if check_keys is None else check_keys
        self.sink = sink
        self._queue = CommitQueue(max_batch)
        self._batches: set[Batch] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._taking: asyncio.Task[None] | None = None
        # Loop-bound: made again by `start`.
        self._order = PublishOrder(sink)
        self._wake = asyncio.Event()

    def start(self) -> None:
        """Start taking batches, on the running loop."""
        if self._taking is not None:
            raise RuntimeError("the group commit is started already")
        self._order = PublishOrder(self.sink)
        self._wake = asyncio.Event()
        self._taking = asyncio.create_task(self._take_forever(), name="group-commit")
        self._taking.add_done_callback(self._taking_ended)

    def _taking_ended(self, taking: asyncio.Task[None]) -> None:
        # Units queued onto a task that died would wait forever: they get its error.
        if not taking.cancelled() and (error := taking.exception()) is not None:
            self._queue.cancel_all(error)

    async def close(self) -> None:
        """Stop: batches in flight are cancelled, and so are the units still queued."""
        # A taking task that died already gave its error to the callers it failed.
        taking = [] if self._taking is None or self._taking.done() else [self._taking]
        tasks = [*taking, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._queue.cancel_all()
        self._taking = None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(
        self,
        organization_id: int,
        work: Work[T],
        *,
        together: Together | None = None,
        keys: frozenset[Hashable] | None = None,
    ) -> T:
        """Run ``work`` in a transaction of ``organization_id``'s events, possibly shared
        with other units; return its value once that transaction has committed.

        With ``together``, the unit may instead be served by one call of it along with
        the units queued next to it that name the same function. With ``keys`` (all
        that it writes under), it may run beside a batch that holds none of them."""
        loop = asyncio.get_running_loop()
        if self._taking is None:
            raise RuntimeError(
                "start the group commit first: `async with GroupCommit(...)`, or `start()`"
                " in the application's lifespan"
            )
        if self._taking.get_loop() is not loop:
            raise RuntimeError("the group commit was started on another event loop")
        if self._taking.done():
            cause = None if self._taking.cancelled() else self._taking.exception()
            raise RuntimeError(f"the group commit stopped taking units: {cause!r}") from cause
        answer: asyncio.Future[T] = loop.create_future()
        self._queue.put(Unit(organization_id, work, together, keys, answer, request_id.get()))
        self._wake.set()
        return await answer

    async def _take_forever(self) -> None:
        while True:
            if self._queue and len(self._batches) < self.in_flight:
                for _ in range(GATHER_TURNS):
                    await asyncio.sleep(0)
                batch = self._queue.take(self._batches)
                if batch is not None:
                    self._start(batch)
                    continue
            # Nothing to take until a unit arrives or a batch ends.
            self._wake.clear()
            await self._wake.wait()

    def _start(self, batch: Batch) -> None:
        self._batches.add(batch)
        task = asyncio.create_task(self._commit(batch), name="group-commit-batch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, batch: Batch) -> None:
        # This task's own context: what it logs, here and while publishing, names the
        # requests it serves.
        request_id.set(joined([unit.request_id for unit in batch.units]))
        started = time.perf_counter()
        try:
            events = await commit_batch(self.db, batch.units, check_keys=self.check_keys)
        except asyncio.CancelledError:
            for unit in batch.units:
                unit.answer.cancel()
            raise
        finally:
            self._batches.discard(batch)
            self._wake.set()
        elapsed = time.perf_counter() - started
        BATCH_SIZE.observe(len(batch.units))
        COMMIT_DURATION.observe(elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "committed %d units with %d events in %.1fms",
                len(batch.units),
                len(events),
                elapsed * 1000,
                extra={"duration_ms": round(elapsed * 1000, 1)},
            )
        await self._order.publish(events)
