"""SQLite write transactions run on the loop's thread, and wait for another process's
write lock without holding up the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from inbox import migrate
from inbox.db import SQLITE_CHECKPOINT_EVERY, Database
from inbox.models import Organization
from inbox.sqlite_inline import begin_immediate


@pytest.fixture()
def url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture()
async def db(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    yield database
    await database.dispose()


def other_process_lock(db: Database) -> sqlite3.Connection:
    """What the CLI beside the server does: hold SQLite's write lock."""
    holder = sqlite3.connect(db.engine.url.database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def insert_organization(db: Database, name: str, *, padding: int = 0) -> None:
    async with db.session(write=True) as session:
        session.add(Organization(name=name))
        if padding:
            await session.exec(  # type: ignore[call-overload]
                text("INSERT INTO padding VALUES (randomblob(:size))"), params={"size": padding}
            )
        await session.commit()


async def organization_names(db: Database) -> list[str]:
    async with db.session() as session:
        return list(await session.exec(select(Organization.name).order_by(col(Organization.id))))


async def test_write_transactions_run_on_the_loops_thread(db: Database) -> None:
    threads: set[int] = set()
    assert db.writer_engine is not None
    async with db.session(write=True) as session:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        threads.add(await driver._execute(threading.get_ident))
    assert threads == {threading.get_ident()}
    await insert_organization(db, "acme")
    assert await organization_names(db) == ["acme"]


async def test_a_writer_waits_for_another_processs_lock_and_the_loop_runs_on(
    db: Database,
) -> None:
    holder = other_process_lock(db)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    writing = asyncio.create_task(insert_organization(db, "waited"))
    try:
        # The loop turns ten times while the writer is still waiting: nothing blocks in
        # SQLite. Counted rather than timed, so a loaded machine only makes it slower.
        async with asyncio.timeout(3):
            while ticks < 10:
                await asyncio.sleep(0.01)
        assert not writing.done()
        holder.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
    finally:
        ticker.cancel()
        writing.cancel()
        holder.close()
    assert await organization_names(db) == ["waited"]


async def test_a_lock_held_past_the_writers_patience_is_an_error(db: Database) -> None:
    holder = other_process_lock(db)
    assert db.writer_engine is not None
    try:
        async with db.writer_engine.connect() as connection:
            with pytest.raises(Exception, match="database is locked"):
                await begin_immediate(connection, 0.2)
    finally:
        holder.close()


async def test_the_write_ahead_log_is_checkpointed_off_the_writers_connection(
    url: str,
) -> None:
    db = Database(url)
    path = Path(db.engine.url.database or "")
    async with db.session(write=True) as session:
        await session.exec(text("CREATE TABLE padding (data BLOB)"))  # type: ignore[call-overload]
        await session.commit()
    before = path.stat().st_size
    names = [f"org {n}" for n in range(SQLITE_CHECKPOINT_EVERY)]
    for name in names[:-1]:
        await insert_organization(db, name, padding=32 * 1024)
    # More than SQLite's automatic checkpoint would have let pile up (1,000 pages), but
    # the writer's own connection never checkpoints: it would block the loop.
    assert path.stat().st_size == before
    await insert_organization(db, names[-1])
    # The database runs one on aiosqlite's thread every so many writes.
    await db.dispose()
    assert path.stat().st_size > before
    reopened = Database(url)
    try:
        assert await organization_names(reopened) == names
    finally:
        await reopened.dispose()
