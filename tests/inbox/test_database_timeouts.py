"""How long the service waits for PostgreSQL: a request's statement at most
INBOX_DATABASE_STATEMENT_TIMEOUT on the server's side, a little longer on the client's
for a server that answers nothing at all; maintenance without a bound."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from inbox.db import Database, timed_out

# PostgreSQL's statement timeout; SQLite's busy timeout is tested by requests.
pytestmark = [pytest.mark.postgres, pytest.mark.backend("postgres")]


async def test_maintenance_has_no_statement_timeout_and_requests_do(own_database: str):
    db = Database(own_database, statement_timeout=1.5)
    try:
        async with db.session() as session:
            bounded = (await session.exec(text("SHOW statement_timeout"))).one()[0]
        async with db.unbounded_session() as session:
            unbounded = (await session.exec(text("SHOW statement_timeout"))).one()[0]
    finally:
        await db.dispose()
    assert (bounded, unbounded) == ("1500ms", "0")


def _stop_backend(pid: int, database: str) -> bool:
    """SIGSTOP the server process serving this connection, when it runs here and is
    ours to stop: the server then answers nothing, as a hung host does."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    # A server elsewhere may have the pid of an unrelated process here.
    if not command.startswith("postgres:") or f" {database} " not in command:
        return False
    try:
        os.kill(pid, signal.SIGSTOP)
    except PermissionError:
        return False
    return True


async def test_a_server_that_answers_nothing_fails_the_statement_soon_after_the_timeout(
    own_database: str,
):
    db = Database(own_database, statement_timeout=0.5)
    try:
        async with db.session() as session:
            pid = (await session.exec(text("SELECT pg_backend_pid()"))).one()[0]
            if not _stop_backend(pid, make_url(own_database).database or ""):
                pytest.skip("the database server's processes are not on this host, or not ours")
            statement = asyncio.create_task(session.exec(text("SELECT 1")))
            try:
                # Only keeps a failing test from hanging.
                done, _ = await asyncio.wait([statement], timeout=60)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert done, "the statement waited for the stopped server without a bound"
            error = statement.exception()
    finally:
        await db.dispose()
    # What a request then answers 503 for.
    assert isinstance(error, TimeoutError)
    assert timed_out(error)
