"""Slow, idle and surplus connections: each request's head and body arrive within a
bound, and a process holds a bounded number of connections.

uvicorn bounds only the idle time between two requests of a connection (its keep-alive
timeout): a client that connects and sends half a request line, or trickles a head or a
body a byte at a time, would hold its socket for ever, and a few thousand of them use
up the process's file descriptors. Its ``limit_concurrency`` answers 503 to requests
only, looks at WebSocket upgrades not at all, and answers in plain text.

So the head-bounded protocols of ``http_limits`` are extended once more, at the
connection (the least they can know of uvicorn, besides what ``http_limits`` relies on):

- a deadline per request: the head must be complete ``header_timeout`` seconds after
  its first byte (or after the connection was made), the body ``body_timeout`` seconds
  after the head. Past it the connection closes (a head not complete is answered 408
  first). Between requests uvicorn's keep-alive timeout holds as before;
- ``server_state.connections`` (uvicorn's set of this process's open HTTP and WebSocket
  connections, which each protocol adds itself to as it is made) counted as a
  connection is made: past ``max_connections`` the connection's requests are answered
  503 with the error envelope and ``Retry-After``, its WebSocket handshake accepted and
  closed at once with 1013 (try again later). Either way it then closes; one that sends
  no head is closed by the head deadline.

What this relies on in uvicorn, besides ``http_limits``' list: the protocol's ``app``,
``ws_protocol_class`` and ``connections`` attributes, set in its ``__init__``; the
WebSocket protocol's ``app``, read when its ASGI task starts; and the transport's
``get_protocol()`` telling an upgraded connection (no longer ours to time) apart.
``tests/inbox/web/test_slow_clients.py`` runs ``inbox serve`` against slow clients.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

import h11

from ..errors import error_body
from .head_meter import HeadLimits
from .http_limits import (
    BoundedH11Protocol,
    BoundedHttpToolsProtocol,
    ParserName,
    _HeadBounds,
    uvicorn_options,
)

log = logging.getLogger("inbox.http")

RETRY_AFTER_SECONDS = 1
# Surplus connections arrive in floods: one warning per this many seconds is enough.
WARN_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 10_000


class _Phase(Enum):
    HEAD = "head"  # a request's head is on its way (or the first one is awaited)
    BODY = "body"  # its body is
    ANSWER = "answer"  # the request is in; the app answers it, then keep-alive holds


_REQUEST_TIMEOUT = b"".join(
    [
        b"HTTP/1.1 408 Request Timeout\r\n",
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n",
        b"connection: close\r\n\r\n",
    ]
)
_TIMEOUT_BODY = error_body("REQUEST_TIMEOUT", "The request was not sent in time")
_TIMEOUT_RESPONSE = _REQUEST_TIMEOUT % len(_TIMEOUT_BODY) + _TIMEOUT_BODY
_BUSY_BODY = error_body(
    "SERVICE_UNAVAILABLE", "The server holds too many connections; retry later"
)


async def over_capacity(scope: Any, receive: Any, send: Any) -> None:
    """The app a surplus connection is given: 503, or a WebSocket closed with 1013."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1013, "reason": "too many connections"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(_BUSY_BODY)),
                (b"retry-after", b"%d" % RETRY_AFTER_SECONDS),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BUSY_BODY})


def _refused_websocket(protocol_class: Any, **kwargs: Any) -> asyncio.Protocol:
    protocol = protocol_class(**kwargs)
    protocol.app = over_capacity
    return cast(asyncio.Protocol, protocol)


_last_warning = [-WARN_EVERY_SECONDS]


def _warn_surplus(count: int, limit: int) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY_SECONDS:
        _last_warning[0] = now
        log.warning(
            "%d connections open, over INBOX_MAX_CONNECTIONS=%d: new ones are answered 503",
            count,
            limit,
        )


class _Deadlines(_HeadBounds):
    """The deadlines and the connection count, over either head-bounded protocol."""

    def __init__(self, *args: Any, bounds: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = bounds
        self._phase = _Phase.HEAD
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self._bounds.header_timeout)
        proto = cast(Any, self)
        count = len(proto.connections)
        if count > self._bounds.max_connections:
            _warn_surplus(count, self._bounds.max_connections)
            proto.app = over_capacity
            proto.ws_protocol_class = functools.partial(
                _refused_websocket, proto.ws_protocol_class
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, *args: Any) -> None:
        # From here the connection is the WebSocket protocol's, with its own pings.
        self._disarm()
        cast(Any, super()).handle_websocket_upgrade(*args)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_begins(self) -> None:
        """Bytes arrive: if no request was under way, they begin a new head."""
        if self._phase is _Phase.ANSWER:
            self._phase = _Phase.HEAD
            self._arm(self._bounds.header_timeout)

    def _head_ends(self) -> None:
        if self._phase is _Phase.HEAD:
            self._phase = _Phase.BODY
            self._arm(self._bounds.body_timeout)

    def _body_ends(self) -> None:
        self._phase = _Phase.ANSWER
        self._disarm()

    def _expired(self) -> None:
        self._deadline = None
        transport = self._bounded_transport
        if transport is None or transport.is_closing() or transport.get_protocol() is not self:
            return  # closed, or upgraded to a WebSocket
        if self._phase is _Phase.HEAD:
            if self._answering():
                # A head pipelined behind a request still being answered: that answer
                # is not cut short; the head gets its time again.
                self._arm(self._bounds.header_timeout)
                return
            transport.write(_TIMEOUT_RESPONSE)
        elif self._phase is not _Phase.BODY:
            return
        peer = transport.get_extra_info("peername")
        log.debug(
            "%s - closed: the request's %s did not arrive in time",
            f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "-",
            self._phase.value,
        )
        transport.close()


if BoundedHttpToolsProtocol is not None:

    class TimedHttpToolsProtocol(_Deadlines, BoundedHttpToolsProtocol):  # type: ignore[misc,valid-type]
        """httptools: its parser callbacks say where each request stands."""

        def _parse(self, data: bytes | memoryview) -> None:
            # http_limits hands the parser one message at a time: what comes after a
            # complete message begins the next head.
            self._head_begins()
            super()._parse(data)

        def on_headers_complete(self) -> None:
            self._head_ends()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._body_ends()
            super().on_message_complete()


class TimedH11Protocol(_Deadlines, BoundedH11Protocol):
    """h11: the client's state, after each parse, says where its request stands."""

    def data_received(self, data: bytes) -> None:
        self._head_begins()
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        conn = cast(Any, self).conn
        state = conn.their_state
        if state is h11.IDLE:
            return  # a head under way keeps its deadline; none: keep-alive holds
        if state is h11.SEND_BODY:
            self._head_ends()
        elif state is h11.DONE and conn.trailing_data[0]:
            # Done, and the next head (held by h11 until this one is answered) begun.
            if self._phase is _Phase.BODY:
                self._body_ends()
            self._head_begins()
        else:
            self._body_ends()


def server_options(
    head: HeadLimits, bounds: ConnectionLimits, parser: ParserName = "auto"
) -> dict[str, Any]:
    """The ``uvicorn.run`` arguments bounding request heads, slow requests and
    connections."""
    options = uvicorn_options(head, parser)
    base = cast(Any, options["http"]).func
    timed: type[_Deadlines] = (
        TimedH11Protocol if issubclass(base, BoundedH11Protocol) else TimedHttpToolsProtocol
    )
    # A partial, as in http_limits: it pickles into --workers processes.
    options["http"] = functools.partial(timed, limits=head, bounds=bounds)
    return options


# Descriptors a process needs besides its client connections: database and Redis
# pools, log files, the listening socket.
SPARE_DESCRIPTORS = 256


def fit_descriptor_limit(max_connections: int) -> None:
    """Raise the process's open-file limit to hold ``max_connections``, as far as the
    hard limit allows; warn if it cannot (accepting would fail before the bound)."""
    import resource

    needed = max_connections + SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "the open-file limit (%d) is below INBOX_MAX_CONNECTIONS=%d plus %d spare: "
            "lower INBOX_MAX_CONNECTIONS or raise `ulimit -n`",
            soft,
            max_connections,
            SPARE_DESCRIPTORS,
        )
