"""Bounds on a request's head (request line and header lines), and the meter that
counts a head as its bytes arrive, before any parser sees them: a head over the bounds
is refused with 431 (414 for a request line alone), plain requests and WebSocket
handshakes alike, since a handshake is an HTTP request until its head is complete."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import error_body

# A request target longer than this is no URL a browser or a platform sends; nginx
# refuses request lines over 8 KiB too.
MAX_REQUEST_LINE = 8 * 1024


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


_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]+)[ \t]*\r?\n", re.IGNORECASE)


def declared_length(data: bytes, end: int) -> int:
    """The Content-Length among the header lines in ``data[:end]``, or -1."""
    found = _CONTENT_LENGTH.search(data, 0, end)
    return int(found[1]) if found else -1
