"""Group commit: concurrent units of work share one transaction and one commit.

Webhook deliveries arrive many at a time, and each one on its own would pay for a
transaction: begin, the organization's event counter, the outbox insert, commit
(on SQLite, also the turn at the one write lock). Here they queue to one writer,
which runs whatever is queued when it is free (after a few turns of the event loop,
so that requests already being handled join in, but no timed wait: under light
load a batch is one delivery), commits once, and only then answers each caller
and publishes the batch's events, in id order.

Units of one kind may also run *together*: consecutive units that name the same
``together`` function are handed to it in one call, which can then serve all of
them with a few statements instead of a few each (``inbound_batch``).

A unit of work that fails takes the shared transaction down with it: the writer
rolls back, answers that caller with its error, and runs the others again without
it. When a ``together`` call fails, the writer cannot tell whose fault it was: it
runs those units again one by one, which finds out. A connection that died while
idle fails the batch run next on it; that batch runs once more on a new one. Any
other failure that belongs to no unit (begin, commit, the database going away
mid-batch) is every caller's error. Units of work must therefore be safe to run
again: they only touch the database and their own ``Transaction``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from ..db import Database
from .outbox import EventSink, OutboxEvent, Transaction, append_events

log = logging.getLogger("inbox.group_commit")

T = TypeVar("T")

# Bounds a batch's transaction (and so the wait of its first caller, and the time
# row locks are held on PostgreSQL).
MAX_BATCH = 64
# Turns of the event loop the writer lets pass before it takes a batch. A webhook's
# unit reaches the queue about three turns after its last bytes do (the protocol,
# the app's task, the route); meanwhile the requests already in hand join the batch
# and share its commit. A turn costs microseconds when there is nothing to do.
GATHER_TURNS = 3

Work = Callable[[Transaction], Awaitable[T]]
# Runs several units' work in the current transaction, one Transaction each, and
# answers their values in the same order. Each work is what that unit would run alone.
Together = Callable[[Sequence[tuple[Transaction, Work[Any]]]], Awaitable[Sequence[Any]]]


@dataclass(eq=False)
class _Unit(Generic[T]):
    organization_id: int
    work: Work[T]
    together: Together | None
    answer: asyncio.Future[T]
    # Set once a together call failed with this unit in it: it runs on its own.
    alone: bool = False
    # Filled by the attempt that ran it.
    events: list[OutboxEvent] = field(default_factory=list)
    value: Any = None


class _UnitFailed(Exception):
    def __init__(self, unit: _Unit[Any], error: BaseException) -> None:
        super().__init__(unit, error)
        self.unit = unit
        self.error = error


class _TogetherFailed(Exception):
    def __init__(self, units: list[_Unit[Any]]) -> None:
        super().__init__(units)
        self.units = units


class GroupCommit:
    """One writer per process for the units of work that may share a commit."""

    def __init__(self, db: Database, sink: EventSink, *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.sink = sink
        self.max_batch = max_batch
        # Loop-bound, so made by the first caller.
        self._queue: asyncio.Queue[_Unit[Any]] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def run(
        self, organization_id: int, work: Work[T], *, together: Together | None = None
    ) -> T:
        """Run ``work`` in a transaction of ``organization_id``'s events, possibly shared
        with other units; return its value once that transaction has committed.

        With ``together``, the unit may instead be served by one call of it along with
        the units queued next to it that name the same function."""
        if (
            self._queue is None
            or self._writer is None
            or self._writer.done()
            or self._writer.get_loop() is not asyncio.get_running_loop()
        ):
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._write_forever(self._queue), name="writer")
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        unit = _Unit(organization_id, work, together, answer)
        self._queue.put_nowait(unit)
        return await unit.answer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait().answer.cancel()
        self._writer = self._queue = None

    async def _write_forever(self, queue: asyncio.Queue[_Unit[Any]]) -> None:
        while True:
            batch = [await queue.get()]
            for _ in range(GATHER_TURNS):
                await asyncio.sleep(0)
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for unit in batch:
                    unit.answer.cancel()
                raise

    async def _commit(self, batch: list[_Unit[Any]]) -> None:
        # A caller that has gone away (its request cancelled) wants no answer.
        pending = [unit for unit in batch if not unit.answer.done()]
        reconnected = False
        while pending:
            try:
                await self._attempt(pending)
                break
            except Exception as exc:
                if not reconnected and _connection_lost(exc):
                    # The writer's connection died while idle (a restart, a timeout):
                    # no unit's fault. Its pool has dropped it; once more on a new one.
                    log.warning("the writer's database connection was lost; reconnecting")
                    reconnected = True
                elif isinstance(exc, _UnitFailed):
                    _settle(exc.unit, error=exc.error)
                    pending = [unit for unit in pending if unit is not exc.unit]
                elif isinstance(exc, _TogetherFailed):
                    log.warning(
                        "%d units failed together; running them one by one",
                        len(exc.units),
                        exc_info=exc.__cause__,
                    )
                    for unit in exc.units:
                        unit.alone = True
                else:
                    for unit in pending:
                        _settle(unit, error=exc)
                    return
        # Committed: answer every caller, then tell everyone else.
        events = [event for unit in pending for event in unit.events]
        for unit in pending:
            _settle(unit, value=unit.value)
        if events:
            try:
                await self.sink.publish(events)
            except Exception:
                # Stored is what counts: subscribers catch up from the outbox.
                log.exception("publishing %d committed events failed", len(events))

    async def _attempt(self, units: list[_Unit[Any]]) -> None:
        """Run every unit in one transaction and commit it; raise _UnitFailed naming
        the unit whose work failed (the transaction then rolled back)."""
        async with self.db.writer_session() as session:
            for run in _runs(units):
                txs = [Transaction(session, unit.organization_id) for unit in run]
                together = None if run[0].alone else run[0].together
                if together is not None:
                    try:
                        values = await together(
                            [(tx, unit.work) for tx, unit in zip(txs, run, strict=True)]
                        )
                        await session.flush()
                    except Exception as exc:
                        raise _TogetherFailed(run) from exc
                    for unit, value in zip(run, values, strict=True):
                        unit.value = value
                else:
                    (unit,) = run
                    try:
                        unit.value = await unit.work(txs[0])
                        # Whatever it left unflushed fails here, as its own failure.
                        await session.flush()
                    except Exception as exc:
                        raise _UnitFailed(unit, exc) from exc
                for unit, tx in zip(run, txs, strict=True):
                    unit.events = tx.events
                # The next unit starts from the database, not from objects this one
                # loaded: it must not see (or flush) anything stale.
                session.expunge_all()
            # Ids are numbered in unit order, so within an organization they follow
            # the order the units ran (and committed) in.
            await append_events(session, [event for unit in units for event in unit.events])
            await session.commit()


def _runs(units: list[_Unit[Any]]) -> list[list[_Unit[Any]]]:
    """The units in order, consecutive ones that may run together grouped."""
    runs: list[list[_Unit[Any]]] = []
    for unit in units:
        last = runs[-1] if runs else None
        if (
            last is not None
            and unit.together is not None
            and not unit.alone
            and not last[0].alone
            and last[0].together is unit.together
        ):
            last.append(unit)
        else:
            runs.append([unit])
    return runs


def _connection_lost(exc: Exception) -> bool:
    cause = (
        exc.error
        if isinstance(exc, _UnitFailed)
        else exc.__cause__
        if isinstance(exc, _TogetherFailed)
        else exc
    )
    return isinstance(cause, DBAPIError) and cause.connection_invalidated


def _settle(unit: _Unit[Any], *, value: Any = None, error: BaseException | None = None) -> None:
    if unit.answer.done():
        return
    if error is not None:
        unit.answer.set_exception(error)
    else:
        unit.answer.set_result(value)
