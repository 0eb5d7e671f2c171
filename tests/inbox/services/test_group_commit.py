"""Group commit: deliveries that share a transaction still succeed or fail alone,
are answered only once committed, and number their events densely, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from inbox.db import POSTGRES_WRITER_CONNECTIONS, Database
from inbox.models import Contact, Event
from inbox.services import accounts
from inbox.services.group_commit import GroupCommit, Work
from inbox.services.outbox import UnitOfWork


class Recorder:
    """An event sink that keeps what it was given, call by call."""

    def __init__(self) -> None:
        self.calls: list[list[Event]] = []

    async def publish(self, events: Sequence[Event]) -> None:
        self.calls.append(list(events))


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def new_org(db: Database) -> int:
    org = await accounts.create_organization(db, "Group commit")
    assert org.id is not None
    return org.id


def add_contact(name: str, *, events: int = 1, fail: bool = False):  # type: ignore[no-untyped-def]
    """A unit of work: a contact row and `events` events; `fail` raises after both."""

    async def work(tx: UnitOfWork) -> str:
        tx.session.add(Contact(organization_id=tx.organization_id, name=name))
        await tx.session.flush()
        for n in range(events):
            tx.emit("test.event", {"name": name, "n": n})
        if fail:
            raise ValueError(f"{name} fails")
        return name

    return work


async def names_stored(db: Database, org_id: int) -> set[str | None]:
    async with db.session() as session:
        rows = await session.exec(select(Contact).where(col(Contact.organization_id) == org_id))
        return {c.name for c in rows}


async def stored_events(db: Database, org_id: int) -> list[Event]:
    async with db.session() as session:
        rows = await session.exec(
            select(Event).where(col(Event.organization_id) == org_id).order_by(col(Event.id))
        )
        return list(rows)


async def test_a_failing_unit_fails_alone_and_the_rest_commit_together(db: Database):
    org = await new_org(db)
    sink = Recorder()
    units = [add_contact("a"), add_contact("b", fail=True), add_contact("c")]
    async with GroupCommit(db, sink) as commits:
        # Queued together before the group commit runs: one batch.
        answers = await asyncio.gather(
            *(commits.run(org, unit) for unit in units), return_exceptions=True
        )

    assert answers[0] == "a" and answers[2] == "c"
    assert isinstance(answers[1], ValueError) and str(answers[1]) == "b fails"
    assert await names_stored(db, org) == {"a", "c"}
    # The failed unit's events took no ids: the outbox has no gap.
    assert [(e.id, e.data["name"]) for e in await stored_events(db, org)] == [(1, "a"), (2, "c")]
    # One commit, one publication, in id order.
    assert [[e.id for e in call] for call in sink.calls] == [[1, 2]]


async def test_a_caller_is_answered_only_once_its_unit_is_committed(db: Database):
    org = await new_org(db)

    async def caller(name: str) -> set[str | None]:
        await commits.run(org, add_contact(name))
        # Another connection already sees it: the answer came after the commit.
        return await names_stored(db, org)

    async with GroupCommit(db, Recorder()) as commits:
        seen = await asyncio.gather(*(caller(name) for name in "xyz"))
    for name, names in zip("xyz", seen, strict=True):
        assert name in names


async def test_event_ids_are_dense_and_in_unit_order_per_organization(db: Database):
    first, second = await new_org(db), await new_org(db)
    sink = Recorder()
    plan = [(first, "f1", 2), (second, "s1", 1), (first, "f2", 1), (second, "s2", 3)]
    async with GroupCommit(db, sink) as commits:
        await asyncio.gather(
            *(commits.run(org, add_contact(name, events=n)) for org, name, n in plan)
        )
        # A later batch goes on from where the first one stopped.
        await commits.run(first, add_contact("f3"))

    expected = {
        first: [("f1", 0), ("f1", 1), ("f2", 0), ("f3", 0)],
        second: [("s1", 0), ("s2", 0), ("s2", 1), ("s2", 2)],
    }
    for org, events in expected.items():
        stored = await stored_events(db, org)
        assert [e.id for e in stored] == list(range(1, len(events) + 1))
        assert [(e.data["name"], e.data["n"]) for e in stored] == events
    published = [e for call in sink.calls for e in call]
    for org in (first, second):
        ids = [e.id for e in published if e.organization_id == org]
        assert ids == sorted(ids) == list(range(1, len(expected[org]) + 1))


async def test_units_queued_a_few_turns_after_the_first_share_its_commit(db: Database):
    org = await new_org(db)
    sink = Recorder()

    async def arriving(name: str, turns: int) -> str:
        # As a webhook's route: its unit is queued a few turns of the loop after the
        # request began, while the group commit already holds the first one.
        for _ in range(turns):
            await asyncio.sleep(0)
        return await commits.run(org, add_contact(name))

    async with GroupCommit(db, sink) as commits:
        await asyncio.gather(arriving("first", 0), arriving("second", 1), arriving("third", 2))
    assert [[e.data["name"] for e in call] for call in sink.calls] == [["first", "second", "third"]]


async def test_a_unit_whose_caller_has_gone_is_not_run(db: Database):
    org = await new_org(db)
    async with GroupCommit(db, Recorder()) as commits:
        gone = asyncio.ensure_future(commits.run(org, add_contact("gone")))
        await asyncio.sleep(0)  # queued
        gone.cancel()
        assert await commits.run(org, add_contact("kept")) == "kept"
    assert await names_stored(db, org) == {"kept"}


async def test_units_queued_side_by_side_run_together_in_one_call(db: Database):
    org = await new_org(db)
    calls: list[int] = []

    async def together(units: Sequence[tuple[UnitOfWork, Work[Any]]]) -> list[Any]:
        calls.append(len(units))
        return [await work(tx) for tx, work in units]

    async with GroupCommit(db, Recorder()) as commits:
        answers = await asyncio.gather(
            commits.run(org, add_contact("a"), together=together),
            commits.run(org, add_contact("b"), together=together),
            commits.run(org, add_contact("alone")),
            commits.run(org, add_contact("c"), together=together),
        )
    assert answers == ["a", "b", "alone", "c"]
    # Only consecutive units share a call; one with none of its kind beside it has its own.
    assert calls == [2, 1]
    assert [e.data["name"] for e in await stored_events(db, org)] == ["a", "b", "alone", "c"]


async def test_a_failed_together_call_is_run_again_one_by_one(db: Database):
    org = await new_org(db)
    sink = Recorder()

    async def together(units: Sequence[tuple[UnitOfWork, Work[Any]]]) -> list[Any]:
        for tx, work in units:
            await work(tx)
        raise RuntimeError("cannot tell whose fault")

    units = [add_contact("a"), add_contact("b", fail=True), add_contact("c")]
    async with GroupCommit(db, sink) as commits:
        answers = await asyncio.gather(
            *(commits.run(org, unit, together=together) for unit in units),
            return_exceptions=True,
        )
    assert answers[0] == "a" and answers[2] == "c"
    assert isinstance(answers[1], ValueError)
    assert await names_stored(db, org) == {"a", "c"}
    assert [(e.id, e.data["name"]) for e in await stored_events(db, org)] == [(1, "a"), (2, "c")]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_batch_whose_connection_died_while_idle_runs_again_on_a_new_one(
    db: Database, caplog: pytest.LogCaptureFixture
):
    org = await new_org(db)
    async with GroupCommit(db, Recorder()) as commits:
        assert await commits.run(org, add_contact("before")) == "before"
        # The writer connection stays open between batches: end it, as a restart would.
        async with db.writer_engine.connect() as connection:
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with db.engine.connect() as connection:
            ended = await connection.scalar(
                text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
            )
        assert ended is True
        assert await commits.run(org, add_contact("after")) == "after"
    assert await names_stored(db, org) == {"before", "after"}
    assert "connection was lost" in caplog.text


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_unit_that_keeps_losing_the_connection_fails_alone_after_one_retry(
    db: Database,
):
    org = await new_org(db)
    attempts = 0

    async def ends_its_connection(tx: UnitOfWork) -> str:
        nonlocal attempts
        attempts += 1
        connection = await tx.session.connection()
        await connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return "never"

    async with GroupCommit(db, Recorder()) as commits:
        results = await asyncio.wait_for(
            asyncio.gather(
                commits.run(org, add_contact("first")),
                commits.run(org, ends_its_connection),
                commits.run(org, add_contact("last")),
                return_exceptions=True,
            ),
            timeout=30,
        )
    assert results[0] == "first" and results[2] == "last"
    assert isinstance(results[1], DBAPIError)
    # Once as the connection lost while idle would be, once more to find the culprit.
    assert attempts == 2
    assert await names_stored(db, org) == {"first", "last"}


class Held:
    """A unit of work that adds a contact and an event, then waits to be let go:
    its batch stays in flight, its transaction open, for as long as the test likes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def in_flight(self, commits: GroupCommit, org: int, *, key: str) -> asyncio.Future[str]:
        """Queue it under ``key``; return its answer once its batch holds it open."""
        answer = asyncio.ensure_future(commits.run(org, self, keys=frozenset({key})))
        await self.started.wait()
        return answer

    async def __call__(self, tx: UnitOfWork) -> str:
        tx.session.add(Contact(organization_id=tx.organization_id, name=self.name))
        await tx.session.flush()
        tx.emit("test.event", {"name": self.name, "n": 0})
        self.started.set()
        await self.release.wait()
        return self.name


async def settled(task: asyncio.Future[Any]) -> bool:
    """Whether ``task`` is done within half a second: far longer than a unit that could
    commit on an open connection takes to."""
    await asyncio.wait([task], timeout=0.5)
    return task.done()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_units_of_other_keys_commit_while_a_batch_is_in_flight(db: Database):
    org = await new_org(db)
    sink = Recorder()
    held = Held("held")
    async with GroupCommit(db, sink) as commits:
        first = await held.in_flight(commits, org, key="a")
        # Beside the open transaction, on the second writer connection.
        beside = commits.run(org, add_contact("beside"), keys=frozenset({"b"}))
        assert await asyncio.wait_for(beside, 30) == "beside"
        assert not first.done()
        held.release.set()
        assert await first == "held"
    # The batch that started second committed first: its event has the first id,
    # and the batches published in the order of their ids.
    assert [(e.id, e.data["name"]) for e in await stored_events(db, org)] == [
        (1, "beside"),
        (2, "held"),
    ]
    assert [[(e.id, e.data["name"]) for e in call] for call in sink.calls] == [
        [(1, "beside")],
        [(2, "held")],
    ]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_unit_whose_key_is_in_flight_waits_and_keeps_its_place(db: Database):
    org = await new_org(db)
    held = Held("held")
    async with GroupCommit(db, Recorder()) as commits:
        first = await held.in_flight(commits, org, key="a")
        same = asyncio.ensure_future(commits.run(org, add_contact("same"), keys=frozenset({"a"})))
        # Shares a key with the one passed over before it: waits too.
        after = asyncio.ensure_future(
            commits.run(org, add_contact("after"), keys=frozenset({"a", "c"}))
        )
        other = asyncio.ensure_future(commits.run(org, add_contact("other"), keys=frozenset({"c"})))
        unrelated = commits.run(org, add_contact("unrelated"), keys=frozenset({"d"}))
        assert await asyncio.wait_for(unrelated, 30) == "unrelated"
        assert not await settled(same)
        assert not after.done() and not other.done()
        held.release.set()
        assert await asyncio.gather(first, same, after, other) == ["held", "same", "after", "other"]
    names = [e.data["name"] for e in await stored_events(db, org)]
    # Units of one key commit in the order they were queued.
    assert names.index("held") < names.index("same") < names.index("after") < names.index("other")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_unit_without_keys_runs_with_no_batch_beside_it(db: Database):
    org = await new_org(db)
    held = Held("held")
    async with GroupCommit(db, Recorder()) as commits:
        first = await held.in_flight(commits, org, key="a")
        beside = commits.run(org, add_contact("beside"), keys=frozenset({"c"}))
        assert await asyncio.wait_for(beside, 30) == "beside"
        anything = asyncio.ensure_future(commits.run(org, add_contact("anything")))
        # Queued behind it: does not overtake it.
        behind = asyncio.ensure_future(
            commits.run(org, add_contact("behind"), keys=frozenset({"b"}))
        )
        assert not await settled(anything)
        assert not behind.done()
        held.release.set()
        assert await asyncio.gather(first, anything, behind) == ["held", "anything", "behind"]
    names = [e.data["name"] for e in await stored_events(db, org)]
    assert names == ["beside", "held", "anything", "behind"]


async def test_batches_in_flight_one_on_sqlite_more_where_the_database_is_a_server(
    db: Database,
):
    # SQLite has one write lock: a second batch would only queue behind it.
    expected = 1 if db.dialect == "sqlite" else POSTGRES_WRITER_CONNECTIONS
    assert GroupCommit(db, Recorder()).in_flight == expected > 0
    assert db.writer_engine.pool.size() == expected  # type: ignore[attr-defined]


async def test_a_started_group_commit_commits_and_cannot_be_started_twice(db: Database):
    org = await new_org(db)
    commits = GroupCommit(db, Recorder())
    commits.start()
    try:
        with pytest.raises(RuntimeError, match="started already"):
            commits.start()
        assert await commits.run(org, add_contact("started")) == "started"
    finally:
        await commits.close()
    # Closed, it may be started again (the application's lifespan, run once more).
    async with commits:
        assert await commits.run(org, add_contact("again")) == "again"


async def test_a_group_commit_never_started_refuses_units(db: Database):
    org = await new_org(db)
    commits = GroupCommit(db, Recorder())
    with pytest.raises(RuntimeError, match="start the group commit first"):
        await commits.run(org, add_contact("unstarted"))
    # Nor is it started by the refusal: what a started one commits is all there is.
    async with commits:
        assert await commits.run(org, add_contact("started")) == "started"
    assert await names_stored(db, org) == {"started"}


async def test_a_group_commit_refuses_units_from_another_event_loop(db: Database):
    async with GroupCommit(db, Recorder()) as commits:

        def from_another_loop() -> str:
            return asyncio.run(commits.run(1, add_contact("elsewhere")))

        with pytest.raises(RuntimeError, match="another event loop"):
            await asyncio.to_thread(from_another_loop)


class QueueBroke(Exception):
    pass


async def test_a_group_commit_that_stopped_taking_units_fails_its_callers(
    db: Database, monkeypatch: pytest.MonkeyPatch
):
    org = await new_org(db)
    commits = GroupCommit(db, Recorder())

    def take(_in_flight: object) -> None:
        raise QueueBroke("the queue broke")

    monkeypatch.setattr(commits._queue, "take", take)
    async with commits:
        # The bound only guards against a hang: the caller is answered with the error.
        with pytest.raises(QueueBroke):
            await asyncio.wait_for(commits.run(org, add_contact("queued")), timeout=30)
        with pytest.raises(RuntimeError, match="stopped taking units") as refused:
            await commits.run(org, add_contact("later"))
        assert isinstance(refused.value.__cause__, QueueBroke)
    assert await names_stored(db, org) == set()
