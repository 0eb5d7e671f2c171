"""The queue of units of work, and how it forms batches whose keys are disjoint.

Pure: it holds units and hands them out; nothing here touches a database or waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..outbox import OutboxEvent, UnitOfWork

T = TypeVar("T")

Work = Callable[[UnitOfWork], Awaitable[T]]
# Runs several units' work in the current transaction, one UnitOfWork each, and
# answers their values in the same order. Each work is what that unit would run alone.
Together = Callable[[Sequence[tuple[UnitOfWork, Work[Any]]]], Awaitable[Sequence[Any]]]


@dataclass(eq=False)
class Unit(Generic[T]):
    """One caller's work, waiting for its answer."""

    organization_id: int
    work: Work[T]
    together: Together | None
    # What it writes under; None: anything.
    keys: frozenset[Hashable] | None
    answer: asyncio.Future[T]
    # The request it serves: the batch's log lines name it (contextvars stay behind
    # in the caller's task).
    request_id: str | None = None
    # Set once a together call failed with this unit in it: it runs on its own.
    alone: bool = False
    # Filled by the attempt that ran it.
    events: list[OutboxEvent] = field(default_factory=list)
    value: Any = None

    def settle(self, *, value: Any = None, error: BaseException | None = None) -> None:
        if self.answer.done():
            return
        if error is not None:
            self.answer.set_exception(error)
        else:
            self.answer.set_result(value)


@dataclass(eq=False)
class Batch:
    """Units that share one transaction and one commit."""

    units: list[Unit[Any]]
    # The union of its units' keys; None when a unit named none.
    keys: AbstractSet[Hashable] | None


class CommitQueue:
    """Units in arrival order; `take` forms the next batch.

    Beside batches in flight, a batch takes only units whose keys are all outside
    theirs. A unit that names no keys runs with no batch beside it. Units are taken
    in order, except that one whose keys are busy is passed over, and so is every
    later unit sharing a key with it: units of one key keep their order.
    """

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._waiting: deque[Unit[Any]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, unit: Unit[Any]) -> None:
        self._waiting.append(unit)

    def take(self, in_flight: Collection[Batch]) -> Batch | None:
        """The next batch that may start beside ``in_flight``; None if none may."""
        busy: set[Hashable] = set()
        for batch in in_flight:
            if batch.keys is None:
                return None
            busy |= batch.keys
        alone = not in_flight
        units: list[Unit[Any]] = []
        keys: set[Hashable] | None = set()
        passed: list[Unit[Any]] = []
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
        return Batch(units, keys)

    def cancel_all(self, error: BaseException | None = None) -> None:
        """Tell every waiting caller that its unit will not run: cancelled, or failed
        with ``error``."""
        while self._waiting:
            unit = self._waiting.popleft()
            if error is None:
                unit.answer.cancel()
            else:
                unit.settle(error=error)
