"""A request the database cannot serve now answers 503 with the error envelope.

The database unreachable, out of connections, a statement past its timeout (a hung
server, a lock held elsewhere), a transaction rolled back by a deadlock: none is the
request's fault, and the same request may succeed in a moment. A client (or a
platform, for webhooks) is told to retry, never given a bare 500.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import Response

from ..db import must_run_again, timed_out
from ..disk import why_unwritable
from ..errors import error_response, unhandled_error_handler

log = logging.getLogger("inbox.errors")

# What the exception handler is registered for; TimeoutError: the client's own bound
# on a PostgreSQL server that does not answer at all; ConnectionError: asyncpg's
# connect to a server that is down (refused, reset) reaches us unwrapped. Those two
# are the database's only when raised inside its driver (`from_database`).
DATABASE_UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    TimeoutError,
    ConnectionError,
)
RETRY_AFTER_SECONDS = 1
_DATABASE_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite", "inbox.db", "inbox.sqlite_inline")


def from_database(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's: SQLAlchemy's own errors are; a bare timeout or
    connection error is when it (or what it was raised from) passed through the driver.
    Any other (a platform's API, a bug) is a 500 that must be seen, not a retry."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frame = current.__traceback__
        while frame is not None:
            if str(frame.tb_frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
                return True
            frame = frame.tb_next
        current = current.__cause__ or current.__context__
    return False


def reason(exc: BaseException) -> str:
    if timed_out(exc) or isinstance(exc, PoolTimeout):
        return "The database did not answer in time; retry later"
    if must_run_again(exc):
        return "The database was busy with a conflicting change; retry"
    return "The database is unavailable; retry later"


async def database_unavailable(request: Request, exc: Exception) -> Response:
    if not from_database(exc):
        return await unhandled_error_handler(request, exc)
    message = reason(exc)
    state = getattr(request.app.state, "inbox", None)
    disk = await why_unwritable(state.db.sqlite_file if state is not None else None)
    log.warning(
        "%s %s: %s (%s)",
        request.method,
        request.url.path,
        f"{message}: {disk}" if disk else message,
        _first_line(exc),
    )
    response = error_response(503, "SERVICE_UNAVAILABLE", message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
