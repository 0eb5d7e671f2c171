"""What the group commit does with an attempt's outcome, until every unit has its answer.

A unit of work that fails takes the shared transaction down with it: its caller gets
its error, and the others run again without it. When a together call fails, whose
fault it was is unknown: those units run again one by one, which finds out. A
connection that died while idle fails the batch run next on it; that batch runs once
more on a new one. A batch the database rolled back for colliding with another
transaction (a deadlock, a serialization failure) is nobody's fault either: it runs
again, whole, after a short pause, up to ``RUN_AGAIN`` times. A statement that timed
out fails the batch for every caller at once, rather than once per unit run again.
Any other failure that belongs to no unit is every caller's error. Units of work
must therefore be safe to run again: they only touch the database and their own
``UnitOfWork``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from sqlalchemy.exc import DBAPIError

from ...db import Database, must_run_again, timed_out
from ..outbox import OutboxEvent
from .attempt import BatchFailed, Committed, TogetherFailed, UnitFailed, attempt
from .queue import Unit

log = logging.getLogger("inbox.group_commit")

# Times a batch rolled back by the database for colliding with another transaction
# is run again before its callers get the error; the pause before each run grows
# from up to RUN_AGAIN_PAUSE seconds, at random so two colliders do not meet again.
RUN_AGAIN = 5
RUN_AGAIN_PAUSE = 0.02


async def commit_batch(
    db: Database, units: list[Unit[Any]], *, check_keys: bool = False
) -> list[OutboxEvent]:
    """Commit the units' work, answer each caller, and return the events to publish."""
    # A caller that has gone away (its request cancelled) wants no answer.
    pending = [unit for unit in units if not unit.answer.done()]
    reconnected = False
    runs_again = 0
    while pending:
        outcome = await attempt(db, pending, check_keys=check_keys)
        if isinstance(outcome, Committed):
            break
        cause = outcome.error
        if not reconnected and _connection_lost(cause):
            # The writer's connection died while idle (a restart, a timeout): no
            # unit's fault. Its pool has dropped it; once more on a new one.
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
        elif must_run_again(cause) or timed_out(cause) or isinstance(outcome, BatchFailed):
            # The database's condition, not a unit's: every caller is told now,
            # instead of each unit waiting out its own timeout in turn.
            for unit in pending:
                unit.settle(error=cause)
            return []
        elif isinstance(outcome, UnitFailed):
            outcome.unit.settle(error=cause)
            pending = [unit for unit in pending if unit is not outcome.unit]
        else:
            run_one_by_one(outcome)
    for unit in pending:
        unit.settle(value=unit.value)
    return [event for unit in pending for event in unit.events]


def run_one_by_one(failed: TogetherFailed) -> None:
    """Have the units of a failed together call run alone next time, to find whose
    fault it was."""
    log.warning(
        "%d units failed together; running them one by one",
        len(failed.units),
        exc_info=failed.error,
    )
    for unit in failed.units:
        unit.alone = True


def _connection_lost(cause: BaseException) -> bool:
    return isinstance(cause, DBAPIError) and cause.connection_invalidated


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
