"""Migrations: they match the models, go up and down cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import create_database, drop_database
from sqlalchemy import inspect
from sqlmodel import SQLModel

from inbox import migrate, models  # noqa: F401 - registers every table
from inbox.db import SQLITE_BUSY_TIMEOUT_MS, Database, create_engine
from inbox.settings import async_database_url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables yet."""
    if request.param == "sqlite":
        yield async_database_url(f"sqlite:///{tmp_path / 'inbox.db'}")
        return
    server_url = request.getfixturevalue("postgres_server_url")
    url, name = create_database(server_url)
    try:
        yield async_database_url(url)
    finally:
        drop_database(server_url, name)


def tables(url: str) -> set[str]:
    async def load() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(load())


def test_upgrade_matches_the_models_and_downgrade_undoes_it(empty_database: str) -> None:
    url = empty_database
    assert not migrate.is_current(url)
    migrate.upgrade(url)
    assert migrate.is_current(url)
    assert tables(url) == set(SQLModel.metadata.tables) | {"alembic_version"}
    migrate.check(url)  # raises when the models and the migrations disagree

    migrate.downgrade(url, "base")
    assert tables(url) <= {"alembic_version"}
    assert not migrate.is_current(url)

    migrate.upgrade(url)
    assert migrate.is_current(url)
    migrate.check(url)
    migrate.upgrade(url)  # already there: nothing to do, no error


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    url = async_database_url(f"sqlite:///{tmp_path / 'inbox.db'}")
    migrate.upgrade(url)

    async def pragmas() -> dict[str, Any]:
        db = Database(url)
        try:
            async with db.session() as session:
                conn = await session.connection()
                return {
                    name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                    for name in ("journal_mode", "busy_timeout", "foreign_keys")
                }
        finally:
            await db.dispose()

    assert asyncio.run(pragmas()) == {
        "journal_mode": "wal",
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
        "foreign_keys": 1,
    }
    assert SQLITE_BUSY_TIMEOUT_MS >= 1000
