"""What the group commit does with each outcome of an attempt, until every caller has its
answer: scripted outcomes, no database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from inbox.services.group_commit import retry
from inbox.services.group_commit.attempt import (
    COMMITTED,
    BatchFailed,
    Outcome,
    TogetherFailed,
    UnitFailed,
)
from inbox.services.group_commit.queue import Unit
from inbox.services.outbox import UnitOfWork


async def nothing(_tx: UnitOfWork) -> None:
    return None


def units(*values: str) -> list[Unit[Any]]:
    loop = asyncio.get_running_loop()
    made = []
    for value in values:
        unit: Unit[Any] = Unit(1, nothing, None, None, loop.create_future())
        unit.value = value
        made.append(unit)
    return made


class Deadlock(Exception):
    sqlstate = "40P01"


class Script:
    """Stands in for `attempt`: answers the outcomes given, one per call, and keeps
    which units each call was asked to run (and which of them were to run alone)."""

    def __init__(self, outcomes: Iterator[Outcome]) -> None:
        self.outcomes = outcomes
        self.calls: list[list[tuple[Any, bool]]] = []

    async def __call__(self, _db: Any, pending: list[Unit[Any]], **_: Any) -> Outcome:
        self.calls.append([(unit.value, unit.alone) for unit in pending])
        return next(self.outcomes)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "RUN_AGAIN_PAUSE", 0)


def scripted(monkeypatch: pytest.MonkeyPatch, *outcomes: Outcome) -> Script:
    script = Script(iter(outcomes))
    monkeypatch.setattr(retry, "attempt", script)
    return script


async def test_a_failed_unit_is_answered_with_its_error_and_the_rest_run_again(monkeypatch):
    a, b, c = batch = units("a", "b", "c")
    script = scripted(monkeypatch, UnitFailed(b, ValueError("b fails")), COMMITTED)
    await retry.commit_batch(None, batch)  # type: ignore[arg-type]
    assert [[value for value, _ in call] for call in script.calls] == [["a", "b", "c"], ["a", "c"]]
    assert (a.answer.result(), c.answer.result()) == ("a", "c")
    with pytest.raises(ValueError, match="b fails"):
        b.answer.result()


async def test_units_of_a_failed_together_call_run_again_alone(monkeypatch):
    batch = units("a", "b")
    script = scripted(monkeypatch, TogetherFailed(batch, RuntimeError("whose?")), COMMITTED)
    await retry.commit_batch(None, batch)  # type: ignore[arg-type]
    assert script.calls == [[("a", False), ("b", False)], [("a", True), ("b", True)]]
    assert [unit.answer.result() for unit in batch] == ["a", "b"]


async def test_a_batch_that_keeps_colliding_runs_again_then_fails_for_everyone(monkeypatch):
    batch = units("a", "b")
    script = scripted(monkeypatch, *[BatchFailed(Deadlock())] * (retry.RUN_AGAIN + 1))
    assert await retry.commit_batch(None, batch) == []  # type: ignore[arg-type]
    assert len(script.calls) == retry.RUN_AGAIN + 1
    for unit in batch:
        assert isinstance(unit.answer.exception(), Deadlock)


async def test_a_collision_that_clears_commits_the_whole_batch(monkeypatch):
    batch = units("a", "b")
    scripted(monkeypatch, UnitFailed(batch[0], Deadlock()), COMMITTED)
    await retry.commit_batch(None, batch)  # type: ignore[arg-type]
    # Nobody's fault: the unit it surfaced in is not blamed.
    assert [unit.answer.result() for unit in batch] == ["a", "b"]


async def test_a_failure_belonging_to_no_unit_is_every_callers_error(monkeypatch):
    batch = units("a", "b")
    scripted(monkeypatch, BatchFailed(OSError("commit failed")))
    assert await retry.commit_batch(None, batch) == []  # type: ignore[arg-type]
    assert all(isinstance(unit.answer.exception(), OSError) for unit in batch)


async def test_a_unit_whose_caller_has_gone_is_not_run(monkeypatch):
    gone, kept = batch = units("gone", "kept")
    gone.answer.cancel()
    script = scripted(monkeypatch, COMMITTED)
    await retry.commit_batch(None, batch)  # type: ignore[arg-type]
    assert script.calls == [[("kept", False)]]
    assert kept.answer.result() == "kept"
