"""Engine and sessions: one async engine per process, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=1800
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes a second
    # writer wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """The engine plus a session factory; ``session()`` is the unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self._sqlite_writer = asyncio.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """A unit of work. ``write=True`` for one that reads and then writes what it read.

        On SQLite such a unit takes the write lock with its first statement (BEGIN
        IMMEDIATE): a transaction that read first and then tries to write fails at once
        with "database is locked" when another writer committed in between, whatever the
        busy timeout. Starting the transaction explicitly also keeps savepoints inside
        it: without it the driver leaves the first SAVEPOINT to open the transaction, and
        its RELEASE commits half of the work. PostgreSQL needs neither.
        """
        if not (write and self.dialect == "sqlite"):
            async with self._sessions() as session:
                yield session
            return
        # Writers of this process queue here in arrival order. SQLite's busy handler,
        # which polls, would starve some of them past the busy timeout under load; it
        # is left to arbitrate between processes (the CLI beside the server).
        async with self._sqlite_writer, self._sessions() as session:
            await (await session.connection()).exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()
