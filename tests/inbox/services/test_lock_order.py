"""Two processes' writers on one PostgreSQL database take their locks in one order:
batches touching the same rows in opposite orders wait for each other instead of
deadlocking; a writer that names no keys has its organization to itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable

import pytest
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox.db import Database
from inbox.models import Contact, Event
from inbox.services import accounts
from inbox.services.group_commit import GroupCommit, Work
from inbox.services.lock_order import lock_for_writing
from inbox.services.outbox import NullSink, UnitOfWork

pytestmark = [pytest.mark.postgres, pytest.mark.backend("postgres")]


@pytest.fixture()
async def two_processes(own_database: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on one database, as two `inbox serve` processes have."""
    # Row locks and deadlocks are PostgreSQL's: SQLite writers take turns.
    first, second = Database(own_database), Database(own_database)
    yield first, second
    await first.dispose()
    await second.dispose()


async def another_waits_for_a_lock(session: AsyncSession, timeout: float = 20) -> None:
    """Return once another session of this database waits for a lock."""
    deadline = time.monotonic() + timeout
    while True:
        # A transaction sees the activity of the others as of its first look, unless
        # told to look again.
        await session.exec(text("SELECT pg_stat_clear_snapshot()"))
        waiting = (
            await session.exec(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )
        ).one()[0]
        if waiting:
            return
        assert time.monotonic() < deadline, "the other writer never waited for a lock"
        await asyncio.sleep(0.01)


async def new_contacts(db: Database, org_id: int, count: int) -> list[int]:
    async with db.session() as session:
        contacts = [Contact(organization_id=org_id, name=f"c{n}") for n in range(count)]
        session.add_all(contacts)
        await session.commit()
        return [c.id for c in contacts if c.id is not None]


def key(contact_id: int) -> frozenset[Hashable]:
    return frozenset({("contact", contact_id)})


def touch(contact_id: int, label: str, before_next: asyncio.Event | None = None) -> Work[str]:
    """A unit of work that locks a contact and notes that it was there; with
    ``before_next``, it then says it holds it and lets another writer get stuck first."""

    async def work(tx: UnitOfWork) -> str:
        contact = await tx.session.get(Contact, contact_id, with_for_update=True)
        assert contact is not None
        contact.notes = (contact.notes or "") + label
        tx.session.add(contact)
        await tx.session.flush()
        tx.emit("test.touched", {"contact": contact_id, "by": label})
        if before_next is not None:
            before_next.set()
            await another_waits_for_a_lock(tx.session)
        return label

    return work


async def test_batches_of_two_processes_locking_two_contacts_in_opposite_orders_both_commit(
    two_processes,
):
    first, second = two_processes
    org = await accounts.create_organization(first, "Opposite orders")
    assert org.id is not None
    x, y = await new_contacts(first, org.id, 2)
    a_holds_x = asyncio.Event()
    async with GroupCommit(first, NullSink()) as a, GroupCommit(second, NullSink()) as b:
        # Process A: x, then (once B is stuck) y. Process B: y, then x.
        in_a = asyncio.gather(
            a.run(org.id, touch(x, "a", a_holds_x), keys=key(x)),
            a.run(org.id, touch(y, "a"), keys=key(y)),
        )
        await a_holds_x.wait()
        in_b = asyncio.gather(
            b.run(org.id, touch(y, "b"), keys=key(y)),
            b.run(org.id, touch(x, "b"), keys=key(x)),
        )
        assert await in_a == ["a", "a"]
        assert await in_b == ["b", "b"]
    async with first.session() as session:
        notes = {
            c.id: c.notes
            for c in await session.exec(select(Contact).where(col(Contact.id).in_([x, y])))
        }
        events = list(
            await session.exec(
                select(Event).where(col(Event.organization_id) == org.id).order_by(col(Event.id))
            )
        )
    # Both batches committed, A's first: B waited for it instead of dying with it.
    assert notes == {x: "ab", y: "ab"}
    assert [e.id for e in events] == [1, 2, 3, 4]
    assert [e.data["by"] for e in events] == ["a", "a", "b", "b"]


async def test_a_writer_naming_keys_waits_only_for_one_holding_the_same_key(two_processes):
    first, second = two_processes
    org = await accounts.create_organization(first, "Keys")
    assert org.id is not None
    async with first.session() as holder, second.session() as other:
        await lock_for_writing(holder, [org.id], {("sender", "a")})
        # Another key of the same organization: no wait.
        await lock_for_writing(other, [org.id], {("sender", "b")})
        await other.rollback()
        # The same key: it waits until the holder's transaction ends.
        waiting = asyncio.create_task(lock_for_writing(other, [org.id], {("sender", "a")}))
        await another_waits_for_a_lock(holder)
        assert not waiting.done()
        await holder.rollback()
        await waiting
        await other.rollback()


async def test_a_writer_naming_no_keys_has_the_organization_to_itself(two_processes):
    first, second = two_processes
    org = await accounts.create_organization(first, "Exclusive")
    elsewhere = await accounts.create_organization(first, "Elsewhere")
    assert org.id is not None and elsewhere.id is not None
    async with first.session() as batch, second.session() as rest:
        await lock_for_writing(batch, [org.id], {("sender", "a")})
        # Another organization is not held up.
        await lock_for_writing(rest, [elsewhere.id])
        await rest.rollback()
        waiting = asyncio.create_task(lock_for_writing(rest, [org.id]))
        await another_waits_for_a_lock(batch)
        assert not waiting.done()
        await batch.rollback()
        await waiting
        await rest.rollback()
