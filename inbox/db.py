"""Engine and sessions: one async engine per process, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from . import sqlite_inline
from .telemetry.metrics import count_connections_in_use

log = logging.getLogger("inbox.db")

SQLITE_BUSY_TIMEOUT_MS = 5000
# How long a request's statement (or its wait for a lock) may take before it fails,
# unless the settings say otherwise (INBOX_DATABASE_STATEMENT_TIMEOUT).
DEFAULT_STATEMENT_TIMEOUT = 5.0
# Seconds past the statement timeout after which the client stops waiting for a
# PostgreSQL server that does not answer at all.
CLIENT_TIMEOUT_MARGIN = 1.0
# Write transactions between two WAL checkpoints (each writes a few pages; SQLite's
# own automatic checkpoint comes every 1,000 pages).
SQLITE_CHECKPOINT_EVERY = 200
# Batches the group commit may have in flight on PostgreSQL, one writer connection
# each: while one waits on the server, this process prepares the next. (SQLite has
# one write lock: one batch at a time.)
POSTGRES_WRITER_CONNECTIONS = 2


def json_dumps(value: Any) -> str:
    # JSON columns hold platform payloads and event data: orjson writes them several
    # times faster than the standard library, the text read back the same.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# Every engine reads and writes JSON columns with these.
_JSON = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}


# PostgreSQL's codes for a transaction the server gave up on that would succeed if
# run again (a deadlock victim, a serialization failure) ...
_RUN_AGAIN = frozenset({"40P01", "40001"})
# ... and for a statement that waited too long: statement_timeout (or a cancel),
# lock_timeout.
_TIMED_OUT = frozenset({"57014", "55P03"})


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    code = getattr(orig if orig is not None else exc, "sqlstate", None)
    return code if isinstance(code, str) else None


def must_run_again(exc: BaseException) -> bool:
    """Whether the database rolled the transaction back for colliding with another
    (deadlock, serialization failure): the same work run again succeeds."""
    return _sqlstate(exc) in _RUN_AGAIN


def timed_out(exc: BaseException) -> bool:
    """Whether a statement gave up waiting: PostgreSQL's statement or lock timeout, the
    client's own for a server that does not answer, or SQLite's write lock still held
    by another process after the busy timeout."""
    if _sqlstate(exc) in _TIMED_OUT or isinstance(exc, TimeoutError):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


def _server_gone(code: str | None) -> bool:
    """A connection failure (class 08) or a server shutting down, crashed or starting
    up (57P01-57P03): the same work succeeds once the server is back."""
    return code is not None and (code.startswith("08") or code in ("57P01", "57P02", "57P03"))


def _operational(context: ExceptionContext) -> BaseException | None:
    """asyncpg's deadlocks and timeouts reach SQLAlchemy as plain DBAPIErrors; they are
    the database's condition, not the statement's fault: OperationalError, as the
    DB-API (and psycopg) class them, which the web edge answers with 503."""
    error = context.sqlalchemy_exception
    if error is None or isinstance(error, OperationalError):
        return None
    code = _sqlstate(error)
    if code not in _RUN_AGAIN | _TIMED_OUT and not _server_gone(code):
        return None
    return OperationalError(
        context.statement,
        context.parameters,
        context.original_exception,
        hide_parameters=context.engine.hide_parameters if context.engine else False,
        connection_invalidated=error.connection_invalidated,
    )


def _postgres_connect_args(
    application_name: str, connect_timeout: float | None, statement_timeout: float | None
) -> dict[str, Any]:
    server_settings = {"application_name": application_name}
    args: dict[str, Any] = {"server_settings": server_settings}
    if statement_timeout is not None:
        # Set at connection start-up, so it costs no round trip; waits for locks count.
        server_settings["statement_timeout"] = str(round(statement_timeout * 1000))
        # The server enforces that only while it runs: one that hangs (stopped, or cut
        # off without a reset) answers nothing. asyncpg then gives up on its side,
        # later, so that a live server's own error comes first.
        args["command_timeout"] = statement_timeout + CLIENT_TIMEOUT_MARGIN
    if connect_timeout is not None:
        # asyncpg's own default is a minute, for the TCP handshake and the start-up
        # exchange alike.
        args["timeout"] = connect_timeout
    return args


def create_engine(
    url: str,
    *,
    echo: bool = False,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> AsyncEngine:
    """The engine of reads and of writes other than the group commit's.

    ``statement_timeout``: how long a statement may run, waits for locks included,
    before it fails; None (migrations) lets it take what it takes. On SQLite it is the
    busy timeout: how long a writer waits for another process's write lock."""
    if url.startswith("sqlite"):
        _create_private(url)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **_JSON)
        busy_ms = SQLITE_BUSY_TIMEOUT_MS if statement_timeout is None else statement_timeout * 1000
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(round(busy_ms)))
        return engine
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_recycle=1800,
        # A request waits for a free connection no longer than for a statement: while
        # the database hangs, every connection is held by a statement that waits.
        pool_timeout=30 if statement_timeout is None else statement_timeout,
        connect_args=_postgres_connect_args("inbox", connect_timeout, statement_timeout),
        **_JSON,
    )
    event.listen(engine.sync_engine, "handle_error", _operational)
    return engine


def _create_private(url: str) -> None:
    """Create a missing SQLite file readable by its owner only (0600), whatever the
    umask: it holds the service's data, hashes and keys. SQLite gives the -wal and
    -shm files it makes beside it the same mode. An existing file is left as the
    operator set it, with a warning if others may read it."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            log.warning(
                "%s may be read by other users (mode %o): `chmod 600` it and its -wal and "
                "-shm files",
                os.path.abspath(path),
                mode,
            )
    except OSError:
        pass  # A missing directory, say: SQLite's own error says it when it opens.


def create_postgres_writer(
    url: str,
    *,
    echo: bool = False,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> AsyncEngine:
    """The group commit's writer connections on PostgreSQL: one per batch it may
    have in flight (``POSTGRES_WRITER_CONNECTIONS``), kept.

    Not pinged before each batch: the dialect's ping is a transaction of its own
    (begin, ping, rollback). A connection that died while idle fails its batch
    instead, and the group commit runs that batch again on a new one (``group_commit``).
    """
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=POSTGRES_WRITER_CONNECTIONS,
        max_overflow=0,
        pool_recycle=1800,
        connect_args=_postgres_connect_args("inbox-writer", connect_timeout, statement_timeout),
        **_JSON,
    )
    event.listen(engine.sync_engine, "handle_error", _operational)
    return engine


def create_sqlite_writer(url: str, *, echo: bool = False) -> AsyncEngine:
    """The engine of SQLite write transactions: one connection, on the loop's thread."""
    engine = create_async_engine(
        url,
        echo=echo,
        async_creator=sqlite_inline.connect(make_url(url).database or ""),
        # Writers of a process take turns anyway (see Database.session).
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        **_JSON,
    )
    # No busy handler: it would hold up the whole loop. begin_immediate waits instead.
    # No automatic checkpoint either: copying the WAL into the database and syncing it
    # takes milliseconds, which Database.session has done on aiosqlite's thread.
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas(0, autocheckpoint=False))
    return engine


def _sqlite_pragmas(busy_timeout_ms: int, *, autocheckpoint: bool = True) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the one writer; the busy timeout makes a second
        # writer wait instead of failing with "database is locked". FULL syncs the WAL
        # at each commit, before a webhook is answered 200: NORMAL would lose the last
        # commits to a power cut or a disk turned read-only, after the platform stopped
        # retrying them (the group commit shares one sync among a batch).
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return on_connect


class Database:
    """The engine plus a session factory; ``session()`` is one transaction."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        connect_timeout: float | None = None,
        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.engine = create_engine(
            url, echo=echo, connect_timeout=connect_timeout, statement_timeout=statement_timeout
        )
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self._sqlite_writer = asyncio.Lock()
        self._writes = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self.writer_engine = (
            create_sqlite_writer(url, echo=echo)
            if self.dialect == "sqlite"
            else create_postgres_writer(
                url,
                echo=echo,
                connect_timeout=connect_timeout,
                statement_timeout=statement_timeout,
            )
        )
        self._writer_sessions = async_sessionmaker(
            self.writer_engine, class_=AsyncSession, expire_on_commit=False
        )
        count_connections_in_use(self.engine)
        count_connections_in_use(self.writer_engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file; None on PostgreSQL and for in-memory databases."""
        if self.dialect != "sqlite":
            return None
        database = make_url(self.url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).resolve()

    @property
    def writer_connections(self) -> int:
        """How many group-commit batches may be in flight at once."""
        return 1 if self.dialect == "sqlite" else POSTGRES_WRITER_CONNECTIONS

    @asynccontextmanager
    async def session(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """A session, one transaction. ``write=True`` for one that reads and then writes
        what it read.

        On SQLite such a session takes the write lock with its first statement (BEGIN
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
        # Writers of this process queue here in arrival order, and run on the loop's
        # thread (sqlite_inline): short statements cost far less there than a hop to
        # aiosqlite's thread. Another process's write lock is waited for without
        # blocking the loop.
        async with self._sqlite_writer, self._writer_sessions() as session:
            connection = await session.connection()
            await sqlite_inline.begin_immediate(connection, self.statement_timeout)
            yield session
        self._writes += 1
        if self._writes % SQLITE_CHECKPOINT_EVERY == 0 and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = asyncio.get_running_loop().create_task(
                self._checkpoint_in_background(), name="sqlite-checkpoint"
            )

    @asynccontextmanager
    async def writer_session(self) -> AsyncIterator[AsyncSession]:
        """A session for one batch of the group commit.

        On SQLite, a write session like any other: they all take turns. On
        PostgreSQL, a session on one of the writer connections (`create_postgres_writer`);
        other write sessions use the pool beside them.
        """
        if self.dialect == "sqlite":
            async with self.session(write=True) as session:
                yield session
            return
        async with self._writer_sessions() as session:
            yield session

    @asynccontextmanager
    async def unbounded_session(self) -> AsyncIterator[AsyncSession]:
        """A session of maintenance (pruning, say), which may take longer than a
        request's statement: on PostgreSQL, on a connection of its own with no timeout
        (the client's is per connection), closed afterwards."""
        if self.dialect != "postgresql":
            async with self._sessions() as session:
                yield session
            return
        engine = create_async_engine(
            self.url,
            echo=self.engine.echo,
            poolclass=NullPool,
            connect_args=_postgres_connect_args("inbox-maintenance", self.connect_timeout, None),
            **_JSON,
        )
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                yield session
        finally:
            await engine.dispose()

    async def _checkpoint_in_background(self) -> None:
        try:
            await self.checkpoint()
        except Exception:
            # The next one takes what this one left; meanwhile the log only grows.
            log.exception("checkpointing SQLite's write-ahead log failed")

    async def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database, on aiosqlite's thread.

        PASSIVE: it takes what no reader still needs and waits for nobody.
        """
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        await self.engine.dispose()
        await self.writer_engine.dispose()
