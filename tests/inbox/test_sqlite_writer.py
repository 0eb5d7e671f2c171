"""SQLite write transactions run on the loop's thread, and wait for another process's
write lock without holding up the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from inbox import migrate
from inbox.db import Database
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


async def insert_organization(db: Database, name: str) -> None:
    async with db.session(write=True) as session:
        session.add(Organization(name=name))
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
    await asyncio.sleep(0.3)
    assert not writing.done()
    # The loop kept turning while the writer waited: nothing blocked in SQLite.
    assert ticks >= 10
    holder.execute("COMMIT")
    await asyncio.wait_for(writing, 5)
    ticker.cancel()
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
