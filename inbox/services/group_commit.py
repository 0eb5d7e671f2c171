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

Where the database is a server of its own (PostgreSQL), a batch's statements and
commit leave this process waiting for a good part of the batch's time. A second
batch may then be in flight on a second connection, so that one is prepared while
the other is in the database, but only of units that cannot get in its way: each
unit names the *keys* it writes under (a delivery: its senders), and a batch that
starts beside another takes only units whose keys are all outside it. A unit that
names none may write anything: it runs in a batch with nothing beside it. Units
are taken in queue order, except that one whose keys are busy is passed over, and
so is every later unit sharing a key with it: units of one key keep their order.
Two batches in flight may commit in either order; each organization's event ids
follow its commits (``append_events``), and batches publish one after the other in
the order their commits ended.

On PostgreSQL a batch takes its locks in the order every writer takes them
(``lock_order``): first its organizations' write locks, shared when every unit
named its keys (and then a lock per key), exclusive otherwise.

A unit of work that fails takes the shared transaction down with it: the writer
rolls back, answers that caller with its error, and runs the others again without
it. When a ``together`` call fails, the writer cannot tell whose fault it was: it
runs those units again one by one, which finds out. A connection that died while
idle fails the batch run next on it; that batch runs once more on a new one. A batch
the database rolled back for colliding with another transaction (a deadlock, a
serialization failure) is nobody's fault either: it runs again, whole, after a short
pause, up to ``RUN_AGAIN`` times. A statement that timed out (the database hangs, or
a lock is held elsewhere) fails the batch for every caller at once, rather than once
per unit run again. Any other failure that belongs to no unit (begin, commit, the
database going away mid-batch) is every caller's error. Units of work must therefore
be safe to run again: they only touch the database and their own ``Transaction``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from ..db import Database, must_run_again, timed_out
from .lock_order import lock_for_writing
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
# Times a batch rolled back by the database for colliding with another transaction
# is run again before its callers get the error; the pause before each run grows
# from up to RUN_AGAIN_PAUSE seconds, at random so two colliders do not meet again.
RUN_AGAIN = 5
RUN_AGAIN_PAUSE = 0.02

Work = Callable[[Transaction], Awaitable[T]]
# Runs several units' work in the current transaction, one Transaction each, and
# answers their values in the same order. Each work is what that unit would run alone.
Together = Callable[[Sequence[tuple[Transaction, Work[Any]]]], Awaitable[Sequence[Any]]]


@dataclass(eq=False)
class _Unit(Generic[T]):
    organization_id: int
    work: Work[T]
    together: Together | None
    # What it writes under; None: anything.
    keys: frozenset[Hashable] | None
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


@dataclass(eq=False)
class _Batch:
    units: list[_Unit[Any]]
    # The union of its units' keys; None when a unit named none.
    keys: set[Hashable] | None
    # Done once the batch has published its events, or has none to publish.
    published: asyncio.Future[None]


class GroupCommit:
    """One writer per process for the units of work that may share a commit."""

    def __init__(
        self,
        db: Database,
        sink: EventSink,
        *,
        max_batch: int = MAX_BATCH,
        in_flight: int | None = None,
    ) -> None:
        self.db = db
        self.sink = sink
        self.max_batch = max_batch
        self.in_flight = db.writer_connections if in_flight is None else in_flight
        self._waiting: deque[_Unit[Any]] = deque()
        self._batches: set[_Batch] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: _Batch | None = None
        # Loop-bound, so made by the first caller.
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

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
        if (
            self._wake is None
            or self._writer is None
            or self._writer.done()
            or self._writer.get_loop() is not asyncio.get_running_loop()
        ):
            # Whatever an earlier loop left is not this one's to answer.
            self._wake = asyncio.Event()
            self._waiting, self._batches, self._last = deque(), set(), None
            self._writer = asyncio.create_task(self._write_forever(self._wake), name="writer")
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Unit(organization_id, work, together, keys, answer))
        self._wake.set()
        return await answer

    async def close(self) -> None:
        tasks = [task for task in (self._writer, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._waiting:
            self._waiting.popleft().answer.cancel()
        self._writer = self._wake = self._last = None

    async def _write_forever(self, wake: asyncio.Event) -> None:
        while True:
            if self._waiting and len(self._batches) < self.in_flight:
                for _ in range(GATHER_TURNS):
                    await asyncio.sleep(0)
                batch = self._take()
                if batch is not None:
                    self._start(batch)
                    continue
            # Nothing to take until a unit arrives or a batch ends.
            wake.clear()
            await wake.wait()

    def _take(self) -> _Batch | None:
        """The next batch: the queue's units in order, but beside a batch in flight
        only those whose keys are outside it (see the module's docstring)."""
        if any(batch.keys is None for batch in self._batches):
            return None
        alone = not self._batches
        busy: set[Hashable] = set()
        for batch in self._batches:
            busy |= batch.keys or set()
        units: list[_Unit[Any]] = []
        keys: set[Hashable] | None = set()
        passed: list[_Unit[Any]] = []
        while self._waiting and len(units) < self.max_batch:
            unit = self._waiting.popleft()
            if unit.answer.done():
                continue  # its caller has gone and wants no answer
            if unit.keys is None:
                if not alone:
                    self._waiting.appendleft(unit)
                    break
                keys = None
            elif not busy.isdisjoint(unit.keys):
                # Passed over, and so is whatever comes later under one of its keys.
                passed.append(unit)
                busy |= unit.keys
                continue
            elif keys is not None:
                keys |= unit.keys
            units.append(unit)
        self._waiting.extendleft(reversed(passed))
        if not units:
            return None
        published = asyncio.get_running_loop().create_future()
        return _Batch(units, keys, published)

    def _start(self, batch: _Batch) -> None:
        self._batches.add(batch)
        task = asyncio.create_task(self._write(batch), name="writer-batch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, batch: _Batch) -> None:
        try:
            events = await self._commit(batch.units)
        except asyncio.CancelledError:
            for unit in batch.units:
                unit.answer.cancel()
            raise
        finally:
            self._batches.discard(batch)
            if self._wake is not None:
                self._wake.set()
        # Published in the order the commits were seen to end. Two batches of one
        # organization commit one after the other (its event counter's row lock), and
        # the second needs a round trip more after the first's commit: this is the
        # order of their event ids.
        previous, self._last = self._last, batch
        try:
            if previous is not None:
                await asyncio.shield(previous.published)
            if events:
                try:
                    await self.sink.publish(events)
                except Exception:
                    # Stored is what counts: subscribers catch up from the outbox.
                    log.exception("publishing %d committed events failed", len(events))
        finally:
            batch.published.set_result(None)

    async def _commit(self, batch: list[_Unit[Any]]) -> list[OutboxEvent]:
        """Commit the units' work, answer each caller, and return the events to tell."""
        # A caller that has gone away (its request cancelled) wants no answer.
        pending = [unit for unit in batch if not unit.answer.done()]
        reconnected = False
        runs_again = 0
        while pending:
            try:
                await self._attempt(pending)
                break
            except Exception as exc:
                cause = _cause(exc)
                if not reconnected and _connection_lost(cause):
                    # The writer's connection died while idle (a restart, a timeout):
                    # no unit's fault. Its pool has dropped it; once more on a new one.
                    log.warning("the writer's database connection was lost; reconnecting")
                    reconnected = True
                elif must_run_again(cause) and runs_again < RUN_AGAIN:
                    runs_again += 1
                    log.warning(
                        "a batch of %d units collided with another transaction (%s); "
                        "running it again (%d of %d)",
                        len(pending),
                        _first_line(cause),
                        runs_again,
                        RUN_AGAIN,
                    )
                    await asyncio.sleep(random.uniform(0, RUN_AGAIN_PAUSE * 2**runs_again))
                elif must_run_again(cause) or timed_out(cause):
                    # The database's condition, not a unit's: every caller is told
                    # now, instead of each unit waiting out its own timeout in turn.
                    for unit in pending:
                        _settle(unit, error=cause)
                    return []
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
                    return []
        for unit in pending:
            _settle(unit, value=unit.value)
        return [event for unit in pending for event in unit.events]

    async def _attempt(self, units: list[_Unit[Any]]) -> None:
        """Run every unit in one transaction and commit it; raise _UnitFailed naming
        the unit whose work failed (the transaction then rolled back)."""
        async with self.db.writer_session() as session:
            keyed = all(unit.keys is not None for unit in units)
            await lock_for_writing(
                session,
                {unit.organization_id for unit in units},
                {key for unit in units for key in unit.keys or ()} if keyed else None,
            )
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


def _cause(exc: Exception) -> BaseException:
    """What went wrong, inside the writer's wrapping of a unit's failure."""
    if isinstance(exc, _UnitFailed):
        return exc.error
    if isinstance(exc, _TogetherFailed) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _connection_lost(cause: BaseException) -> bool:
    return isinstance(cause, DBAPIError) and cause.connection_invalidated


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _settle(unit: _Unit[Any], *, value: Any = None, error: BaseException | None = None) -> None:
    if unit.answer.done():
        return
    if error is not None:
        unit.answer.set_exception(error)
    else:
        unit.answer.set_result(value)
