"""Bounds on a request's head (request line and header lines), enforced in the HTTP server.

uvicorn's httptools parser bounds nothing: one connection can stream headers until the
process runs out of memory. h11 stops at 16 KiB but answers a bare 400. Here every byte
of a head is counted as it arrives, before the parser sees it, so a head over the
bounds is refused with 431 (414 for a request line alone) whichever parser runs, and
plain HTTP requests and WebSocket handshakes alike, since the handshake is an HTTP
request until its head is complete.

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
import re
from dataclasses import dataclass
from typing import Any, Literal, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import error_body

log = logging.getLogger("inbox.http")

# A request target longer than this is no URL a browser or a platform sends; nginx
# refuses request lines over 8 KiB too.
MAX_REQUEST_LINE = 8 * 1024

# After a refusal, what the client still sends is read and dropped, up to this much
# and this long: closing a socket with unread data makes the kernel reset it, and the
# reset destroys the answer the client has not read yet. Dropped bytes cost no memory.
LINGER_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 5.0

ParserName = Literal["auto", "httptools", "h11"]


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """``max_bytes`` and ``max_headers`` for a request's head; ``max_request_line`` for
    its first line. ``max_bytes`` counts the request line and every header line."""

    max_bytes: int = 32 * 1024
    max_headers: int = 100
    max_request_line: int = MAX_REQUEST_LINE


class HeadMeter:
    """Counts one request head as its bytes arrive, without keeping them.

    ``feed`` looks at each byte of the head once (the line ends, and the blank line
    that ends the head); what follows the head in the same chunk (a body, the next
    request) is left to the parser, which says when the next head begins (``reset``).
    """

    __slots__ = ("end", "fresh", "limits", "lines", "request_line", "size", "started", "tail")

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        # Once per request: the counters are set by the first ``feed``.
        self.fresh = True
        self.end = -1  # where the head ended in the chunk last fed (just past it), or -1

    def feed(self, data: bytes) -> int:
        """0 while the head is within bounds, else the status that refuses it."""
        if self.fresh and data[0] > 0x20:
            # Most heads arrive whole in one chunk: three scans of the head, no more.
            limits = self.limits
            at = data.find(b"\n\r\n", 0, limits.max_bytes)
            if at >= 0:
                end = at + 3
                lines = data.count(b"\n", 0, end)
                # A request line is no longer than the head it starts.
                if lines - 2 <= limits.max_headers and (
                    end <= limits.max_request_line
                    or data.find(b"\n", 0, end) <= limits.max_request_line
                ):
                    self.fresh = False
                    self.size, self.lines, self.request_line = end, lines, -1
                    self.started, self.tail, self.end = True, b"", end
                    return 0
        return self._feed(data)

    def _feed(self, data: bytes) -> int:
        if self.fresh:
            self.fresh = False
            self.size = 0  # bytes of the head so far
            self.lines = 0  # line ends so far
            self.request_line = 0  # bytes of the request line so far, -1 once it ended
            self.started = False  # a byte other than CR/LF seen
            self.tail = b""  # the last bytes of a head that goes on in the next chunk
        start = 0
        if not self.started:
            # Parsers skip empty lines before a request line: they are no blank line
            # ending a head, but they are bytes received.
            if data[:1] in (b"\r", b"\n"):
                start = len(data) - len(data.lstrip(b"\r\n"))
                if start == len(data):
                    self.size += start
                    self.end = -1
                    return 431 if self.size > self.limits.max_bytes else 0
            self.started = True
        status = self._count(data, start, self._end(data, start, bare_lf=False))
        if status:
            # h11 also ends lines with a bare LF; a head ended that way was counted on
            # into whatever followed it. Counted again with that end, it may fit.
            end = self._end(data, start, bare_lf=True)
            if end >= 0:
                status = self._count(data, start, end)
        return status

    def _end(self, data: bytes, start: int, bare_lf: bool) -> int:
        """Where the head ends in ``data`` (just past its blank line), or -1."""
        tail = self.tail
        if tail:
            # The blank line may straddle two chunks: an end found here is earlier
            # than any inside ``data``.
            joined = tail + data[:2]
            ends = []
            for blank in (b"\n\r\n", b"\n\n") if bare_lf else (b"\n\r\n",):
                at = joined.find(blank)
                # Ending inside the tail, it would have ended the previous chunk's head.
                if at >= 0 and at + len(blank) > len(tail):
                    ends.append(at + len(blank) - len(tail))
            if ends:
                return min(ends)
        # Only an end within the bound matters: past it the head is refused anyway.
        stop = self.limits.max_bytes - self.size
        at = data.find(b"\n\r\n", start, stop)
        end = at + 3 if at >= 0 else -1
        if bare_lf:
            at = data.find(b"\n\n", start, end if end >= 0 else stop)
            if at >= 0:
                end = at + 2
        return end

    def _count(self, data: bytes, start: int, end: int) -> int:
        limits = self.limits
        upto = len(data) if end < 0 else end
        request_line = self.request_line
        if request_line >= 0:
            at = data.find(b"\n", start, upto)
            if at < 0:
                request_line += upto - start
            else:
                request_line += at - start
            if request_line > limits.max_request_line:
                return 414
            if at >= 0:
                request_line = -1
        size = self.size + upto
        if size > limits.max_bytes:
            return 431
        lines = self.lines + data.count(b"\n", start, upto)
        # Line ends: the request line's, one per header, and (once ended) the blank line's.
        headers = lines - 2 if end >= 0 else lines - 1
        if headers > limits.max_headers:
            return 431
        self.size, self.lines, self.request_line = size, lines, request_line
        self.end = end
        if end >= 0:
            self.tail = b""
        else:
            self.tail = data[-2:] if len(data) >= 2 else (self.tail + data)[-2:]
        return 0


_REASONS = {
    414: (b"URI Too Long", "URI_TOO_LONG", "The request line is longer than {line} bytes"),
    431: (
        b"Request Header Fields Too Large",
        "REQUEST_HEADERS_TOO_LARGE",
        "The request's headers are larger than {bytes} bytes or more than {count} fields",
    ),
}


def refusal(status: int, limits: HeadLimits) -> bytes:
    """The whole response refusing a head: the error envelope, then the connection ends."""
    phrase, code, message = _REASONS[status]
    body = error_body(
        code,
        message.format(
            line=limits.max_request_line, bytes=limits.max_bytes, count=limits.max_headers
        ),
    )
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, phrase),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class _Unmetered(Exception):
    """A request began inside a read after the previous one ended, where its head could
    not be counted from its first byte."""


_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]+)[ \t]*\r?\n", re.IGNORECASE)


def declared_length(data: bytes, end: int) -> int:
    """The Content-Length among the header lines in ``data[:end]``, or -1."""
    found = _CONTENT_LENGTH.search(data, 0, end)
    return int(found[1]) if found else -1


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
                super().data_received(data)  # type: ignore[arg-type]
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
