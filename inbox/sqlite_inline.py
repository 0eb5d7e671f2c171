"""SQLite for the writer, on the event loop's own thread.

aiosqlite runs every call on a thread of its own, and the hop there and back costs
far more than the writer's short statements (indexed lookups and single-row changes,
at most one group commit of them per transaction): they run where they are awaited.

The one wait SQLite can impose on a writer is for the write lock another process
holds (the CLI, another worker). The busy handler is off on these connections and
`begin_immediate` retries with `asyncio.sleep`, so that wait never blocks the loop;
once the lock is held, WAL mode makes nothing else wait.

`InlineConnection` replaces private parts of aiosqlite's `Connection` (``BUILT_FOR``
says which versions); `unmet_assumptions` names what a newer one broke.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection

_RETRY_FIRST_SECONDS = 0.001
_RETRY_MAX_SECONDS = 0.05

# The aiosqlite versions (first, below) whose Connection internals `InlineConnection`
# replaces or reads; the upper bound is the minor after the newest version tested.
# Move it only once tests/inbox/test_sqlite_inline.py passes on the new version.
BUILT_FOR: tuple[tuple[int, ...], tuple[int, ...]] = ((0, 22), (0, 23))
# What of aiosqlite's Connection the subclass relies on: the attributes its __init__
# sets, and the methods the public ones (and SQLAlchemy's driver) go through.
RELIED_ON = ("_connection", "_connector", "_running", "_execute", "_conn", "stop")


def unmet_assumptions(version: str = aiosqlite.__version__) -> list[str]:
    """What `InlineConnection` assumes of the installed aiosqlite and does not hold."""
    unmet = []
    number = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    first, below = BUILT_FOR
    if not first <= number < below:
        unmet.append(f"aiosqlite {version} is outside the versions it was built for")
    probe = aiosqlite.Connection(lambda: sqlite3.connect(":memory:"), iter_chunk_size=64)
    # Looked up without calling a property: `_conn` raises while nothing is open.
    found = {*vars(probe), *dir(aiosqlite.Connection)}
    unmet += [f"aiosqlite.Connection has no {name}" for name in RELIED_ON if name not in found]
    return unmet


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
