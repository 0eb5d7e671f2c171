"""One attempt at a batch: run its units in one transaction and commit, or say why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...db import Database
from ..lock_order import lock_for_writing
from ..outbox import UnitOfWork, commit_with_events
from .key_check import KeyCheck
from .queue import Unit


@dataclass(frozen=True, slots=True)
class Committed:
    """Every unit ran; each holds its value and events, and the commit is done."""


@dataclass(frozen=True, slots=True)
class UnitFailed:
    """That unit's work raised; the transaction rolled back."""

    unit: Unit[Any]
    error: Exception


@dataclass(frozen=True, slots=True)
class TogetherFailed:
    """A together call raised: one of its units is at fault, but which is not known."""

    units: list[Unit[Any]]
    error: Exception


@dataclass(frozen=True, slots=True)
class BatchFailed:
    """What failed belongs to no unit: begin, a lock, the commit, the connection."""

    error: Exception


Outcome = Committed | UnitFailed | TogetherFailed | BatchFailed
COMMITTED = Committed()


async def attempt(db: Database, units: list[Unit[Any]], *, check_keys: bool = False) -> Outcome:
    """Run every unit in one transaction and commit it, unless one fails."""
    try:
        async with db.writer_session() as session:
            keyed = all(unit.keys is not None for unit in units)
            await lock_for_writing(
                session,
                {unit.organization_id for unit in units},
                {key for unit in units for key in unit.keys or ()} if keyed else None,
            )
            check = KeyCheck() if check_keys and keyed else None
            for run in runs(units):
                txs = [UnitOfWork(session, unit.organization_id) for unit in run]
                together = None if run[0].alone else run[0].together
                try:
                    if together is None:
                        run[0].value = await run[0].work(txs[0])
                    else:
                        values = await together(
                            [(tx, unit.work) for tx, unit in zip(txs, run, strict=True)]
                        )
                        for unit, value in zip(run, values, strict=True):
                            unit.value = value
                    # Whatever it left unflushed fails here, as its own failure.
                    await session.flush()
                    if check is not None:
                        await check.after_run(
                            session,
                            {unit.organization_id for unit in run},
                            {key for unit in run for key in unit.keys or ()},
                        )
                except Exception as exc:
                    if together is not None:
                        return TogetherFailed(run, exc)
                    return UnitFailed(run[0], exc)
                for unit, tx in zip(run, txs, strict=True):
                    unit.events = tx.events
                # The next unit starts from the database, not from objects this one
                # loaded: it must not see (or flush) anything stale.
                session.expunge_all()
            # Ids are numbered in unit order, so within an organization they follow
            # the order the units ran (and committed) in.
            await commit_with_events(session, [event for unit in units for event in unit.events])
    except Exception as exc:
        return BatchFailed(exc)
    return COMMITTED


def runs(units: list[Unit[Any]]) -> list[list[Unit[Any]]]:
    """The units in order, consecutive ones that may run together grouped."""
    grouped: list[list[Unit[Any]]] = []
    for unit in units:
        last = grouped[-1] if grouped else None
        if (
            last is not None
            and unit.together is not None
            and not unit.alone
            and not last[0].alone
            and last[0].together is unit.together
        ):
            last.append(unit)
        else:
            grouped.append([unit])
    return grouped
