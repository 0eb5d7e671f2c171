"""A real ``websockets`` client of the service's ``/ws``: every frame it receives is checked
against the published JSON Schema of its type.

Also the async REST client and small helpers the live tests share.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from support import BackgroundLoop, LiveServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from inbox.app import create_app
from inbox.db import Database
from inbox.live import Live
from inbox.live.asyncapi import frame_schemas
from tests.inbox.conftest import Service, make_settings

T = TypeVar("T")

_VALIDATORS = {
    type: Draft202012Validator(schema, format_checker=FormatChecker())
    for type, schema in frame_schemas().items()
}
# Every recipient of an event gets the same bytes: one check per distinct frame is enough.
_checked: set[bytes] = set()


def check_frame(raw: bytes | str) -> dict[str, Any]:
    """Parse a server frame and validate it against the schema of its ``type``."""
    data = raw.encode() if isinstance(raw, str) else raw
    frame = orjson.loads(data)
    assert isinstance(frame, dict), frame
    if data not in _checked:
        validator = _VALIDATORS.get(frame.get("type"))
        assert validator is not None, f"frame of an unpublished type: {frame}"
        errors = sorted(validator.iter_errors(frame), key=str)
        assert not errors, f"{frame} does not match its schema: {errors[0]}"
        if len(_checked) > 100_000:
            _checked.clear()
        _checked.add(data)
    return frame


def ws_url(base: str, query: str = "") -> str:
    """``/ws`` of a server given by its http:// (or ws://) base URL."""
    base = "ws" + base.removeprefix("http") if base.startswith("http") else base
    return f"{base}/ws" + (f"?{query}" if query else "")


async def open_ws(
    base: str,
    credential: str | None = None,
    query: str = "",
    *,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> ClientConnection:
    """Open ``/ws``; ``credential`` goes in ``Authorization: Bearer``."""
    sent = dict(headers or {})
    if credential is not None:
        sent["Authorization"] = f"Bearer {credential}"
    options.setdefault("compression", None)
    options.setdefault("open_timeout", 10)
    # Read everything the server sends, so a closing frame is never stuck behind a full queue.
    options.setdefault("max_queue", None)
    return await connect(ws_url(base, query), additional_headers=sent, **options)


async def refused(base: str, credential: str | None = None, query: str = "", **kw: Any) -> int:
    """The HTTP status of a handshake the server must refuse."""
    return (await refusal(base, credential, query, **kw))[0]


async def refusal(
    base: str, credential: str | None = None, query: str = "", **kw: Any
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, the error of the JSON body) of a handshake the server must refuse."""
    with pytest.raises(InvalidStatus) as caught:
        ws = await open_ws(base, credential, query, **kw)
        # Accepted after all: show what it would have received.
        frames = [await receive(ws, 2)]
        await ws.close()
        raise AssertionError(f"handshake accepted; first frame {frames}")
    response = caught.value.response
    assert response.headers["content-type"] == "application/json"
    body = orjson.loads(response.body or b"")
    assert list(body) == ["error"] and set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, body["error"]


async def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(decode=False), timeout)
    return check_frame(raw)


async def answer(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame that is not a ``metrics.update``: the live figures go out when they
    change, a moment after the change, so one may come between a client's frame and the
    answer to it."""
    while True:
        frame = await receive(ws, timeout)
        if frame["type"] != "metrics.update":
            return frame


async def ready(ws: ClientConnection) -> dict[str, Any]:
    """The first frame of every accepted connection."""
    frame = await receive(ws)
    assert frame["type"] == "session.ready", frame
    return frame


async def frames_until(
    ws: ClientConnection,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Frames up to and including the first one ``done`` accepts."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive(ws, timeout)
            frames.append(frame)
            if done(frame):
                return frames


async def events_until(ws: ClientConnection, last_id: int, timeout: float = 20.0) -> list[Any]:
    """Frames up to and including the stored event ``last_id``."""
    return await frames_until(ws, lambda f: f.get("id") == last_id, timeout)


async def frames_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Whatever arrives within ``seconds``."""
    frames: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(await receive(ws, seconds))
    except TimeoutError:
        pass
    return frames


async def drain(ws: ClientConnection) -> list[dict[str, Any]]:
    """Round-trip a ping: everything queued for the client before the pong comes first."""
    await ws.send('{"type": "ping"}')
    frames = await frames_until(ws, lambda f: f["type"] == "pong")
    return frames[:-1]


async def closed_with(ws: ClientConnection, timeout: float = 15.0) -> int | None:
    """Read (and check) until the server closes; its close code."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await receive(ws, timeout)
    except ConnectionClosed:
        pass
    return ws.close_code


def stored(frames: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored events among frames (those with an id)."""
    return [f for f in frames if "id" in f]


def ids_of(frames: Iterable[dict[str, Any]]) -> list[int]:
    return [f["id"] for f in frames if "id" in f]


def of_type(frames: Iterable[dict[str, Any]], *types: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] in types]


def consecutive(ids: list[int]) -> bool:
    return ids == list(range(ids[0], ids[0] + len(ids))) if ids else True


# -- the server side ------------------------------------------------------------------


def rest(base: str, token: str | None = None) -> httpx.AsyncClient:
    """An async REST client: sync calls would stall the WebSocket clients of the test loop."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=32)
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits)


async def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the server's loop; wait for it without blocking this one."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


def stuck_socket(host: str, port: int, token: str) -> socket.socket:
    """Complete a WebSocket handshake on a plain socket with a tiny buffer; never read."""
    sock = socket.socket()
    # Set before connecting: the window is agreed on in the handshake.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101 "), response
    return sock


def read_to_end(sock: socket.socket, timeout: float = 15.0) -> tuple[bytes, str]:
    """Read until the server's close frame or the end of the connection: (what came, how it
    ended: "close frame", "closed" or "reset")."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.settimeout(timeout)
    received = bytearray()
    try:
        while chunk := sock.recv(1 << 16):
            received += chunk
            # This client never answers the close: the server would wait for it in vain.
            if parse_stream(bytes(received))[1] is not None:
                return bytes(received), "close frame"
    except ConnectionResetError:
        return bytes(received), "reset"
    return bytes(received), "closed"


def parse_stream(stream: bytes) -> tuple[list[dict[str, Any]], int | None]:
    """The frames in a server's raw byte stream: (checked text frames, close code or None).

    A stream cut off mid-frame (the server aborted the connection) ends at the last whole one.
    """
    frames: list[dict[str, Any]] = []
    code = None
    at = 0
    while at + 2 <= len(stream):
        opcode, length = stream[at] & 0x0F, stream[at + 1] & 0x7F
        assert not stream[at + 1] & 0x80, "server frames are never masked"
        at += 2
        if length in (126, 127):
            size = 2 if length == 126 else 8
            if at + size > len(stream):
                break
            length = int.from_bytes(stream[at : at + size], "big")
            at += size
        if at + length > len(stream):
            break
        payload = stream[at : at + length]
        at += length
        if opcode == 0x1:
            frames.append(check_frame(payload))
        elif opcode == 0x8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    return frames, code


@contextlib.contextmanager
def extra_server(
    database_url: str, loop: BackgroundLoop, **overrides: Any
) -> Iterator[tuple[Service, LiveServer]]:
    """Another live server on the same database, with its own settings."""
    settings = make_settings(database_url, **overrides)
    app = create_app(settings)
    server = LiveServer(app, loop)
    server.start()
    db = Database(database_url)
    service = Service(server.url, server.ws_url, settings, db, loop, db.dialect, app=app)
    try:
        yield service, server
    finally:
        for client in service.clients:
            client.close()
        if not server.server.should_exit:
            server.stop()
        loop.run(db.dispose())


@contextlib.contextmanager
def extra_service(database_url: str, loop: BackgroundLoop, **overrides: Any) -> Iterator[Service]:
    with extra_server(database_url, loop, **overrides) as (service, _server):
        yield service


def live_of(service: Service) -> Live:
    live: Live = service.app.state.inbox.live
    return live


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(frame).decode())
