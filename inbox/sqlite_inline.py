"""SQLite for the writer, on the event loop's own thread.

aiosqlite runs every call on a thread of its own: a point query that takes SQLite
8 µs costs about 140 µs of CPU in the hop there and back, and a webhook's write
transaction makes a dozen of them. The writer's statements are short by
construction (indexed lookups and single-row changes, at most one group commit of
them per transaction), so they run where they are awaited instead.

The one wait SQLite can impose on a writer is for the write lock another process
holds (the CLI, another worker). The busy handler is off on these connections and
`begin_immediate` retries with `asyncio.sleep`, so that wait never blocks the loop;
once the lock is held, WAL mode makes nothing else wait.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection

_RETRY_FIRST_SECONDS = 0.001
_RETRY_MAX_SECONDS = 0.05


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's interface (what SQLAlchemy's driver uses), minus the thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def connect(path: str) -> Callable[[], Awaitable[InlineConnection]]:
    """An `async_creator` for SQLAlchemy: connections that never wait on a lock."""

    def connector() -> sqlite3.Connection:
        # The driver's defaults otherwise, as aiosqlite would open it.
        return sqlite3.connect(path, timeout=0)

    async def create() -> InlineConnection:
        return await InlineConnection(connector)._open()

    return create


async def begin_immediate(connection: AsyncConnection, patience: float) -> None:
    """Take SQLite's write lock, waiting for another process's transaction without
    blocking the loop; raise sqlite3.OperationalError ("database is locked") after
    `patience` seconds."""
    deadline = time.monotonic() + patience
    pause = _RETRY_FIRST_SECONDS
    while True:
        try:
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except Exception as exc:
            if "database is locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, _RETRY_MAX_SECONDS)
