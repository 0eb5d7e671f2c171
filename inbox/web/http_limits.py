"""uvicorn's HTTP protocols with each request's head metered (see head_meter): uvicorn's
httptools parser bounds nothing, and h11 stops at 16 KiB with a bare 400.

This is the one module that knows uvicorn's HTTP protocol classes. What it relies on:

- ``data_received`` and ``connection_made``/``connection_lost`` (asyncio's Protocol);
- httptools' parser callbacks ``on_message_begin``, ``on_headers_complete`` and
  ``on_message_complete``, which uvicorn's ``HttpToolsProtocol`` implements, and its
  answering 400 and closing when a callback raises;
- ``on_response_complete``, which uvicorn calls when a response has been sent, before
  it goes on to a pipelined request;
- ``H11Protocol.conn``, its ``h11.Connection`` (``their_state``, ``our_state`` and
  ``trailing_data`` are h11's public API);
- uvicorn calling the ``http`` it is given with keyword arguments (a class or any
  callable) and pickling it for ``--workers``.

``tests/inbox/web/test_header_limits.py`` checks each of these and runs real servers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Literal, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .head_meter import HeadLimits, HeadMeter, declared_length, refusal

log = logging.getLogger("inbox.http")

# After a refusal, what the client still sends is read and dropped, up to this much
# and this long: closing a socket with unread data makes the kernel reset it, and the
# reset destroys the answer the client has not read yet. Dropped bytes cost no memory.
LINGER_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 5.0

ParserName = Literal["auto", "httptools", "h11"]


class _Unmetered(Exception):
    """A request began inside a read after the previous one ended, where its head could
    not be counted from its first byte."""


class _HeadBounds(asyncio.Protocol):
    """What both bounded protocols share: the meter, and refusing.

    A refusal waits for the answer to any earlier request of the connection (one
    pipelined behind it), so that answers keep the order of the requests.
    """

    def __init__(self, *args: Any, limits: HeadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._meter = HeadMeter(limits)
        self._in_head = True  # the next byte received belongs to a request's head
        self._refused = 0  # the status, once refused
        self._deferred = False  # refused, to be answered once earlier answers are out
        self._dropped = 0
        self._linger: asyncio.TimerHandle | None = None
        self._bounded_transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._bounded_transport = cast(asyncio.Transport, transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def _answering(self) -> bool:
        raise NotImplementedError

    def _next_head(self) -> None:
        self._in_head = True
        self._meter.reset()

    def _admit(self, data: bytes) -> bool:
        """Meter ``data`` as the pending head; False once it is refused."""
        status = self._meter.feed(data)
        if status:
            self._refuse(status)
        return not status

    def _refuse(self, status: int) -> None:
        transport = self._bounded_transport
        self._refused = status
        if transport is None or transport.is_closing():
            return
        if self._answering():
            self._deferred = True
            transport.pause_reading()
            return
        self._send_refusal(linger=True)

    def _before_next_answer(self) -> None:
        """Called as an answer completes, before the server looks at the next request."""
        if self._deferred and not self._answering():
            self._deferred = False
            # Closed at once: the server must not go on to the refused request (a
            # client that pipelines has sent all it meant to already).
            self._send_refusal(linger=False)

    def _send_refusal(self, linger: bool) -> None:
        transport = self._bounded_transport
        assert transport is not None
        if transport.is_closing():
            return
        peer = transport.get_extra_info("peername")
        log.warning(
            "%s - refused a request head over the bounds: %d",
            f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "-",
            self._refused,
        )
        transport.write(refusal(self._refused, self._limits))
        if not linger or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._linger = asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def _drop(self, size: int) -> None:
        self._dropped += size
        transport = self._bounded_transport
        if self._dropped > LINGER_BYTES and transport is not None:
            transport.close()


# uvicorn prefers httptools where it is installed; without it there is only h11.
BoundedHttpToolsProtocol: type[_HeadBounds] | None
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover
    BoundedHttpToolsProtocol = None
else:

    class _BoundedHttpToolsProtocol(_HeadBounds, HttpToolsProtocol):
        """uvicorn's httptools protocol with the head bounded.

        httptools parses all it is given at once, pipelined requests included. So the
        parser is handed a read in pieces that end where a message ends (after a head
        without a body, or after a body of known length), and each following head
        goes through the meter from its first byte. A request that still begins
        inside a piece (after a chunked body) is refused with uvicorn's 400 before any
        of its head is parsed.
        """

        _requests = 0  # heads handed to uvicorn and not yet answered
        _body_left = -1  # bytes of the current body still to come, -1 if not known
        _ended = False  # a message ended inside the piece being parsed

        def data_received(self, data: bytes) -> None:
            if self._refused:
                self._drop(len(data))
                return
            cut = self._cut(data)
            while cut > 0:
                # What follows ``cut`` begins a new request: parsed on its own, after
                # its head went through the meter.
                self._parse(memoryview(data)[:cut])
                transport = self._bounded_transport
                if self._refused or (transport is not None and transport.is_closing()):
                    return
                data = data[cut:]
                cut = self._cut(data)
            if cut == 0:
                self._parse(data)

        def _cut(self, data: bytes) -> int:
            """Where in ``data`` the message being received ends, if more follows it;
            0 to parse all of it; -1 once refused."""
            if self._in_head:
                meter = self._meter
                status = meter.feed(data)
                if status:
                    self._refuse(status)
                    return -1
                end = meter.end
                if end < 0 or end == len(data):
                    return 0
                length = declared_length(data, end)
                if length < 0 or end + length < len(data):
                    # Without a length, the message ends with its head, or its body
                    # is chunked (then the guard in on_message_begin holds).
                    self._body_left = -1
                    return end if length < 0 else end + length
                self._body_left = end + length - len(data)
                return 0
            left = self._body_left
            if 0 <= left < len(data):
                self._body_left = -1
                return left
            if left > 0:
                self._body_left = left - len(data)
            return 0

        def _parse(self, data: bytes | memoryview) -> None:
            try:
                super().data_received(data)  # type: ignore[arg-type]  # httptools reads a memoryview too
            finally:
                self._ended = False

        def on_message_begin(self) -> None:
            if self._ended:
                raise _Unmetered
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._requests += 1
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = self._ended = True
            self._meter.reset()

        def on_response_complete(self) -> None:
            self._requests -= 1
            if self._deferred:
                self._before_next_answer()
            super().on_response_complete()

        def _answering(self) -> bool:
            return self._requests > 0

    BoundedHttpToolsProtocol = _BoundedHttpToolsProtocol


class BoundedH11Protocol(_HeadBounds, H11Protocol):
    """uvicorn's h11 protocol with the head bounded.

    h11 takes a request's head only once it is complete, and holds what the client
    sends after a request until the answer to it is out (pipelining). The client's
    state says where the next bytes go: IDLE, the pending head; SEND_BODY, a body;
    DONE, the head of the next request, held. Held bytes are metered as they arrive,
    before h11 parses them.
    """

    _seen: object = h11.IDLE  # the client's state when last looked at

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drop(len(data))
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if not self._in_head:
                self._next_head()
            if not self._admit(data):
                return
        elif state is h11.DONE:
            # A held head already seen to its end: what follows is h11's to parse later.
            if self._in_head and self._meter.end < 0 and not self._admit(data):
                return
        else:
            # A body; or closing, switching protocols, failed: h11 refuses what follows.
            self._in_head = False
        super().data_received(data)
        self._sync()

    def on_response_complete(self) -> None:
        self._before_next_answer()
        # uvicorn starts the next cycle here, and h11 parses what it held.
        self._seen = h11.IDLE
        super().on_response_complete()
        self._sync()

    def _sync(self) -> None:
        """Follow the client's state after h11 parsed: where does the next head start?"""
        if self._refused:
            return
        state: object = self.conn.their_state
        seen = self._seen
        self._seen = state
        if state is h11.DONE and seen is not h11.DONE:
            # A request ended: what h11 holds after it is the next head, and what
            # arrives from now on continues it.
            self._next_head()
            held = self.conn.trailing_data[0]
            if held:
                self._admit(held)
        elif state is h11.IDLE:
            if not self._in_head:
                self._next_head()
        elif state is not h11.DONE:
            self._in_head = False

    def _answering(self) -> bool:
        return self.conn.our_state is h11.SEND_RESPONSE or self.conn.our_state is h11.SEND_BODY


def http_protocol(limits: HeadLimits, parser: ParserName = "auto") -> type[asyncio.Protocol]:
    """What to pass uvicorn as ``http``: its protocol for ``parser``, head bounded.

    ``auto`` is uvicorn's own choice (httptools where it is installed).
    """
    if parser == "auto":
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        parser = "h11" if issubclass(AutoHTTPProtocol, H11Protocol) else "httptools"
    if parser == "httptools":
        if BoundedHttpToolsProtocol is None:
            raise RuntimeError("httptools is not installed")
        base: type[_HeadBounds] = BoundedHttpToolsProtocol
    else:
        base = BoundedH11Protocol
    # uvicorn only calls what it is given, with keyword arguments, so a partial carries
    # the limits; unlike a class made here, it pickles into --workers processes.
    return cast(type[asyncio.Protocol], functools.partial(base, limits=limits))


def uvicorn_options(limits: HeadLimits, parser: ParserName = "auto") -> dict[str, Any]:
    """The ``uvicorn.run`` arguments that bound request heads."""
    return {
        "http": http_protocol(limits, parser),
        # h11 keeps its own bound on an incomplete head (16 KiB by default), below ours
        # it would answer 400 first.
        "h11_max_incomplete_event_size": limits.max_bytes,
    }
