"""Real servers for the realtime tests: uvicorn in a thread, a tiny Starlette app, and an
in-memory outbox standing in for the application's events table."""

from __future__ import annotations

import asyncio
import base64
import bisect
import itertools
import os
import socket
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from uvicorn._compat import asyncio_run
from websockets.asyncio.client import ClientConnection, connect

from realtime import (
    Broker,
    BrokerUnavailable,
    Envelope,
    Hub,
    Presence,
    RealtimeEndpoint,
    ReplayTruncated,
    Session,
    create_backend,
)
from realtime.endpoint import HandshakeRefused
from realtime.transport import DirectFrames

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A real uvicorn server on 127.0.0.1, running its own event loop in a thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.port = free_port()
        options.setdefault("ws_per_message_deflate", False)
        self.config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", **options
        )
        self.server = uvicorn.Server(self.config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio_run(self._main(), loop_factory=self.config.get_loop_factory())
        except BaseException as exc:
            self._error = exc

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    def start(self) -> ServerThread:
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self._error!r}")
            self._thread.join(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        assert not self._thread.is_alive(), "server did not stop"

    def url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and wait for it from the test's loop."""
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def open_sockets(self) -> int:
        """Connections uvicorn still holds: one is dropped only when its socket is."""
        return len(self.server.server_state.connections)


class StoreLog:
    """The outbox: ids increase across organizations, as with one events table."""

    def __init__(self, page: int = 50) -> None:
        self._ids = itertools.count(1)
        self._page = page
        self.events: dict[int, list[Envelope]] = defaultdict(list)
        # Replay from an id below this one is past retention.
        self.oldest_kept: dict[int, int] = {}
        self.latest_asked = 0

    def append(self, organization_id: int, type: str, data: dict[str, Any]) -> Envelope:
        envelope = Envelope.build(type, organization_id, data, id=next(self._ids))
        self.events[organization_id].append(envelope)
        return envelope

    def ids(self, organization_id: int) -> list[int]:
        return [e.id for e in self.events[organization_id] if e.id is not None]

    async def latest_id(self, organization_id: int) -> int:
        self.latest_asked += 1
        events = self.events[organization_id]
        return (events[-1].id or 0) if events else 0

    async def after(self, organization_id: int, after_id: int) -> AsyncIterator[Envelope]:
        if after_id + 1 < self.oldest_kept.get(organization_id, 0):
            raise ReplayTruncated
        events = self.events[organization_id]
        index = bisect.bisect_right(self.ids(organization_id), after_id)
        # Page by page like a keyset query, yielding to the loop in between so that
        # events written meanwhile interleave with the replay as they would in production.
        while index < len(events):
            page = events[index : index + self._page]
            index += len(page)
            for envelope in page:
                yield envelope
            await asyncio.sleep(0)


class RealtimeApp:
    """A minimal application wired the way the real one is: outbox, broker, hub, endpoint."""

    def __init__(
        self,
        broker_url: str | None = None,
        *,
        presence: Presence | None = None,
        hub: Hub | None = None,
        allowed_origins: tuple[str, ...] = (),
        fill_gaps: bool = False,
        event_types: Collection[str] | None = None,
        direct_frames: bool | DirectFrames = True,
    ) -> None:
        self.log = StoreLog()
        self.hub = hub or Hub(fill_gaps_from=self.log if fill_gaps else None)
        self.tokens: dict[str, Session] = {}
        self.presence = presence
        self.reconnects = 0
        self.publish_failures = 0
        self._allowed_origins = allowed_origins
        self._tokens = itertools.count(1)
        self.broker = Broker(
            create_backend(broker_url), on_event=self.hub.dispatch, on_reconnected=self.catch_up
        )
        self.endpoint = RealtimeEndpoint(
            hub=self.hub,
            event_log=self.log,
            authenticate=self.authenticate,
            origin_allowed=self.origin_allowed,
            on_typing=self.typing,
            presence=presence,
            event_types=event_types,
            direct_frames=direct_frames,
        )
        self.app = Starlette(routes=[WebSocketRoute("/ws", self.endpoint)], lifespan=self.lifespan)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.broker.start()
        if self.presence is not None:
            await self.presence.start()
        try:
            yield
        finally:
            await self.hub.close_all()
            if self.presence is not None:
                await self.presence.stop()
            await self.broker.stop()

    def token(
        self,
        organization_id: int,
        user_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        token = f"token-{next(self._tokens)}"
        user = {"id": user_id, "name": f"user {user_id}"} if user_id else {"api_key": True}
        self.tokens[token] = Session(organization_id, user, user_id, expires_at)
        return token

    async def authenticate(self, request: HTTPConnection) -> Session | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header else request.query_params.get("token")
        if not token:
            return None
        session = self.tokens.get(token)
        if session is None:
            raise HandshakeRefused("AUTHENTICATION_FAILED", "Unknown token", {"reason": "invalid"})
        return session

    def origin_allowed(self, origin: str, host: str) -> bool:
        return origin in self._allowed_origins

    async def typing(self, session: Session, conversation_id: int, connection_id: str) -> None:
        data = {
            "conversation_id": conversation_id,
            "user_id": session.user_id,
            "connection_id": connection_id,
        }
        await self.publish(Envelope.build("typing", session.organization_id, data))

    async def publish(self, envelope: Envelope) -> None:
        try:
            await self.broker.publish(envelope)
        except BrokerUnavailable:
            # As the application does: the event is in the outbox; catching up delivers it.
            self.publish_failures += 1

    async def produce(
        self,
        organization_id: int,
        count: int,
        *,
        type: str = "message.received",
        pause: float = 0.0,
        size: int = 0,
        data: dict[str, Any] | None = None,
    ) -> list[int]:
        ids = []
        for n in range(count):
            body = dict(data or {}, n=n)
            if size:
                body["text"] = "x" * size
            envelope = self.log.append(organization_id, type, body)
            await self.publish(envelope)
            ids.append(envelope.id or 0)
            await asyncio.sleep(pause)
        return ids

    async def catch_up(self) -> None:
        self.reconnects += 1
        await self.hub.catch_up(self.log)


async def client(
    server: ServerThread,
    token: str | None,
    query: str = "",
    *,
    small_buffer: bool = False,
    **options: Any,
) -> ClientConnection:
    if small_buffer:
        # Otherwise the kernel's receive buffer grows to megabytes and hides a slow reader.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        options["sock"] = sock
    headers = dict(options.pop("additional_headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    options.setdefault("compression", None)
    options.setdefault("open_timeout", 10)
    # A client that stops reading while the server streams cannot read the server's close
    # frame either, so its own close() would wait out its timeout: read everything.
    options.setdefault("max_queue", None)
    return await connect(server.url(query), additional_headers=headers, **options)


async def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    body = orjson.loads(frame)
    assert isinstance(body, dict)
    return body


async def receive_events(
    ws: ClientConnection, until_id: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Frames up to and including the event with id `until_id`."""
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive(ws, timeout)
            frames.append(frame)
            if frame.get("id") == until_id:
                return frames


async def nothing_more(ws: ClientConnection) -> None:
    """Round-trip a ping: anything queued before the pong would show up first."""
    await ws.send('{"type": "ping"}')
    assert await receive(ws) == {"type": "pong"}


def ids_of(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["id"] for frame in frames if "id" in frame]


def stuck_client(server: ServerThread, token: str) -> socket.socket:
    """Complete a WebSocket handshake on a plain socket, then never read from it."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
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


def drain(sock: socket.socket, timeout: float = 10.0) -> str:
    """Read until the server ends the connection; say how it ended."""
    # The tiny window that made the client slow would make draining slow too.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        return "reset"
    return "closed"
