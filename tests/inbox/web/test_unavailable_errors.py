"""A timeout or a refused connection is the database's, answered 503 "retry later", only
when it came from the database driver; the same error from anything else is a 500 that
an operator sees in the log, not a retry that hides a bug."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support import LiveServer

from inbox.errors import unhandled_error_handler
from inbox.web.unavailable import DATABASE_UNAVAILABLE, database_unavailable, from_database


@pytest.fixture()
def served(silent_server: int, loop: Any) -> Iterator[httpx.Client]:
    server = LiveServer(app(silent_server), loop)
    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word, as a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return int(port)


def app(silent_port: int) -> Starlette:
    async def database_hangs(request: Request) -> Response:
        await asyncpg.connect(host="127.0.0.1", port=silent_port, user="x", timeout=0.2)
        return Response("unreachable")

    async def database_down(request: Request) -> Response:
        await asyncpg.connect(host="127.0.0.1", port=closed_port(), user="x", timeout=2)
        return Response("unreachable")

    async def something_else_hangs(request: Request) -> Response:
        await asyncio.wait_for(asyncio.sleep(5), 0.01)
        return Response("unreachable")

    async def something_else_down(request: Request) -> Response:
        await asyncio.open_connection("127.0.0.1", closed_port())
        return Response("unreachable")

    return Starlette(
        routes=[
            Route("/database-hangs", database_hangs),
            Route("/database-down", database_down),
            Route("/other-hangs", something_else_hangs),
            Route("/other-down", something_else_down),
        ],
        exception_handlers={
            **dict.fromkeys(DATABASE_UNAVAILABLE, database_unavailable),
            Exception: unhandled_error_handler,
        },
    )


@pytest.mark.parametrize("path", ["/database-hangs", "/database-down"])
def test_the_database_timing_out_or_refusing_is_a_503_to_retry(served, path):
    r = served.get(path)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.parametrize("path", ["/other-hangs", "/other-down"])
def test_the_same_error_from_anything_else_is_a_logged_500(served, path, caplog):
    with caplog.at_level(logging.ERROR):
        r = served.get(path)
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "INTERNAL_ERROR"
    assert any(
        record.levelno == logging.ERROR and path in record.getMessage() for record in caplog.records
    )


def test_an_error_raised_from_a_database_error_is_the_databases(silent_server):
    async def wrapped() -> None:
        try:
            await asyncpg.connect(host="127.0.0.1", port=silent_server, user="x", timeout=0.1)
        except TimeoutError as exc:
            raise ConnectionError("gave up") from exc

    with pytest.raises(ConnectionError) as raised:
        asyncio.run(wrapped())
    assert from_database(raised.value)
    assert not from_database(ConnectionError("elsewhere"))
