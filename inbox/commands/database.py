"""The database a command works on: named, reached, its schema made current."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..settings import Settings, _variable_name
from .output import CliError, command_name, emit

DATABASE_VARIABLE = "INBOX_DATABASE_URL"
POSTGRES_DEFAULT_PORT = 5432


def database_variable() -> str:
    # Spelled as the user set it: DATABASE_URL on a PaaS, INBOX_DATABASE_URL otherwise.
    return _variable_name(DATABASE_VARIABLE)


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL and in-memory databases."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database:
        return None
    if database == ":memory:" or database.startswith("file:"):
        return None
    return Path(os.path.abspath(database))


def shown_database(url: str) -> str:
    """The database as people recognize it: a file's absolute path, or the URL with no
    password and the driver the user did not choose left out."""
    from sqlalchemy.engine import make_url

    path = sqlite_path(url)
    if path is not None:
        return str(path)
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def _failure_reason(exc: BaseException, settings: Settings) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, TimeoutError):
        return (
            f"no answer within {settings.database_connect_timeout:g} s "
            "(INBOX_DATABASE_CONNECT_TIMEOUT)"
        )
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # The driver's own exception says it best (asyncpg's sits behind the adapter's).
        exc = exc.orig.__cause__ or exc.orig
    if isinstance(exc, OSError):
        if isinstance(exc, socket.gaierror) and exc.strerror:
            return exc.strerror
        if exc.errno is not None and exc.errno > 0:
            # asyncio's messages repeat the address; the system's name is enough.
            return os.strerror(exc.errno)
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _unreachable(exc: BaseException, settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    reason = _failure_reason(exc, settings)
    variable = database_variable()
    if settings.is_sqlite:
        shown = shown_database(settings.database_url)
        return f"{variable}: cannot open the SQLite database {shown}: {reason}"
    parsed = make_url(settings.database_url)
    host = parsed.host or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = parsed.port or POSTGRES_DEFAULT_PORT
    return f"{variable}: cannot connect to PostgreSQL at {host}:{port}: {reason}"


def reach(settings: Settings) -> str | None:
    """Connect once, within the connect timeout; the database's schema revision."""
    from .. import migrate

    try:
        return migrate.current_revision(
            settings.database_url, connect_timeout=settings.database_connect_timeout
        )
    except Exception as exc:
        # Whatever stops the first connection, the user needs the variable and the
        # address, not the driver's stack.
        raise CliError(_unreachable(exc, settings)) from None


def upgrade(settings: Settings, revision: str | None) -> list[tuple[str, str]]:
    """Bring the schema from ``revision`` to the newest; the migrations applied."""
    from .. import migrate

    pending = migrate.revisions_after(revision)
    if pending:
        migrate.upgrade(settings.database_url, connect_timeout=settings.database_connect_timeout)
    return pending


def prepare(
    args: argparse.Namespace, settings: Settings, *, writes: bool = True, creates: bool = False
) -> None:
    """Before a command uses the database: say which one, refuse to make a stray one,
    reach it, and have its schema current."""
    from .. import migrate

    path = sqlite_path(settings.database_url)
    creates = creates or bool(getattr(args, "create", False))
    if path is not None and not path.exists() and not creates:
        # Opening a missing SQLite file creates it: run from another directory, a
        # command would quietly work on a new, empty database.
        variable = database_variable()
        # Only commands that can make something of a new database offer --create.
        if hasattr(args, "create"):
            ways = f"run this from the service's directory, set {variable}, or pass --create"
        else:
            ways = f"run this from the service's directory or set {variable}"
        raise CliError(f"no database at {path}: {ways}")
    revision = reach(settings)
    if writes:
        # After reaching it: a failure's one line names the database already.
        print(f"database: {shown_database(settings.database_url)}", file=sys.stderr)
    if revision == migrate.head_revision():
        return
    if not settings.is_sqlite:
        # PostgreSQL is migrated deliberately (once per release), never as a side effect.
        raise CliError(f"the database schema is not up to date: run `{command_name()} migrate`")
    # The embedded default needs no set-up step, as `serve` promises.
    upgrade(settings, revision)


def run(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from ..db import Database

    async def main() -> int:
        db = Database(settings.database_url, connect_timeout=settings.database_connect_timeout)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .. import migrate

    # Creating the database is part of migrating it: no --create needed here.
    applied = upgrade(settings, reach(settings))
    head = migrate.head_revision()
    shown = shown_database(settings.database_url)
    text = [f"applied {revision}: {doc}" for revision, doc in applied]
    text.append(f"database {shown} is at the newest schema (revision {head})")
    emit(
        args,
        {"database": shown, "revision": head, "applied": [revision for revision, _ in applied]},
        "\n".join(text),
    )
    return 0
