"""Posting deliveries: HTTP/1.1 over kept-alive connections, one write per request.

A general-purpose client spent about 1.7 ms of CPU on each request here (connection
pool bookkeeping, per-request socket probes, a failed import at every call), which held
one process near 600 deliveries/s whatever else was done. A delivery needs a small part
of what such a client does: a POST with a body already in memory, its status, one
header and the first bytes of the answer. h11 parses and writes the protocol.

The destination is checked as `connectors.safe_urls` does for every connection: the
name is resolved here, a forbidden address refused, and the connection made to the
address checked (the name stays in ``Host`` and in TLS), so DNS rebinding reaches
nothing new. Redirects are answers like any other, never followed; no proxy is used.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import h11

from connectors.safe_urls import check_url, resolve

# Each read asks for at most this much; answers are small and read up to a cap.
READ_BYTES = 65536
# A connection unused this long is closed rather than reused: receivers' servers drop
# idle ones after a few seconds to minutes, and a stale one costs a failed attempt.
IDLE_SECONDS = 15.0
# A compressed answer is read up to this many times the bytes kept, whatever it
# decompresses to: a stream of empty blocks is not read forever.
MAX_RAW_FACTOR = 64


class DeliveryFailed(Exception):
    """No answer: the connection failed or the receiver broke the protocol."""


class _Unanswered(DeliveryFailed):
    """Failed before the answer's status line: on a reused connection, most likely one
    the receiver closed while it was idle."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None
    # The first bytes of the body, up to the cap asked for.
    body: bytes


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]
    host_header: str
    path: str


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)
        self.idle_since = time.monotonic()
        self.reused = False

    def usable(self, now: float) -> bool:
        # A receiver's close that already arrived shows as EOF; one that crosses the
        # request on the wire is caught by the retry in `post`.
        return (
            now - self.idle_since < IDLE_SECONDS
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )

    def close(self) -> None:
        self.writer.transport.abort()


class DeliveryClient:
    """Keeps up to ``max_idle`` idle connections per origin; callers bound how many
    requests they have in flight (the sender does, per endpoint)."""

    def __init__(self, *, allow_private: bool, max_idle: int = 64) -> None:
        self.allow_private = allow_private
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._swept = time.monotonic()

    async def post(
        self, url: str, body: bytes, headers: Sequence[tuple[str, str]], keep: int
    ) -> Answer:
        """POST ``body``; the answer's status, ``Retry-After`` and first ``keep``
        bytes. UnsafeUrl for a forbidden destination, DeliveryFailed for no answer.
        Cancelling it (a timeout) closes the connection it was using."""
        target = self._target(url)
        if time.monotonic() - self._swept >= IDLE_SECONDS:
            self._sweep()
        connection = self._take_idle(target.origin)
        if connection is not None:
            try:
                return await self._exchange(connection, target, body, headers, keep)
            except _Unanswered:
                # Closed by the receiver while idle, just as it was taken: once more on
                # a new connection (a receiver may then see the request twice, which the
                # same webhook-id lets it recognise).
                pass
        connection = await self._connect(target)
        return await self._exchange(connection, target, body, headers, keep)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _target(self, url: str) -> _Target:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(check_url(url))
            assert parts.hostname is not None
            host = parts.hostname.encode("idna").decode("ascii")
            default = 443 if parts.scheme == "https" else 80
            port = parts.port or default
            shown = f"[{host}]" if ":" in host else host
            path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
            if parts.query:
                path += "?" + quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
            found = _Target(
                (parts.scheme, host, port), shown if port == default else f"{shown}:{port}", path
            )
            if len(self._targets) > 10_000:  # URLs change rarely; never without bound
                self._targets.clear()
            self._targets[url] = found
        return found

    def _sweep(self) -> None:
        """Close the connections of receivers no longer posted to (each one a socket
        the receiver has most likely closed already)."""
        now = self._swept = time.monotonic()
        for origin, idle in list(self._idle.items()):
            for connection in idle:
                if not connection.usable(now):
                    connection.close()
            idle[:] = [c for c in idle if not c.writer.is_closing()]
            if not idle:
                del self._idle[origin]

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable(now):
                connection.reused = True
                return connection
            connection.close()
        return None

    def _give_back(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(self, target: _Target) -> _Connection:
        scheme, host, port = target.origin
        address = await resolve(host, port, self.allow_private)
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            reader, writer = await asyncio.open_connection(
                address, port, ssl=tls, server_hostname=host if tls else None, limit=READ_BYTES
            )
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryFailed(f"cannot connect to {host}:{port}: {exc}") from None
        return _Connection(reader, writer)

    async def _exchange(
        self,
        connection: _Connection,
        target: _Target,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        keep: int,
    ) -> Answer:
        done = False
        try:
            answer, reusable = await self._send_and_read(connection, target, body, headers, keep)
            done = True
        finally:
            # Cancelled or failed half-way: the connection is in an unknown state.
            if not done:
                connection.close()
        if reusable:
            self._give_back(target.origin, connection)
        else:
            connection.close()
        return answer

    async def _send_and_read(
        self,
        connection: _Connection,
        target: _Target,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        keep: int,
    ) -> tuple[Answer, bool]:
        protocol = connection.protocol
        status: int | None = None
        retry_after: str | None = None
        kept = bytearray()
        inflate: zlib._Decompress | None = None
        raw_budget = keep * MAX_RAW_FACTOR
        try:
            request = h11.Request(
                method="POST",
                target=target.path,
                headers=[
                    ("host", target.host_header),
                    ("content-length", str(len(body))),
                    # What is kept of an answer is its first bytes, as text.
                    ("accept-encoding", "identity"),
                    *headers,
                ],
            )
            connection.writer.write(
                b"".join(
                    (
                        protocol.send(request) or b"",
                        protocol.send(h11.Data(data=body)) or b"",
                        protocol.send(h11.EndOfMessage()) or b"",
                    )
                )
            )
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await connection.reader.read(READ_BYTES)
                    except OSError as exc:
                        failed = _Unanswered if status is None else DeliveryFailed
                        raise failed(f"connection lost: {exc}") from None
                    protocol.receive_data(data)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    for name, value in event.headers:
                        if name == b"retry-after":
                            retry_after = value.decode("latin-1")
                        elif name == b"content-encoding":
                            inflate = _decompressor(value.strip().lower())
                elif isinstance(event, h11.Data):
                    raw_budget -= len(event.data)
                    if inflate is None:
                        kept += event.data[: keep - len(kept)]
                    else:
                        try:
                            kept += inflate.decompress(event.data, keep - len(kept))
                        except zlib.error:
                            inflate, raw_budget = (
                                None,
                                0,
                            )  # not what it said: what was decoded stands
                    if len(kept) >= keep or raw_budget <= 0:
                        # The rest is not read: the connection cannot serve another.
                        assert status is not None
                        return Answer(status, retry_after, bytes(kept)), False
                elif isinstance(event, h11.EndOfMessage):
                    assert status is not None
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    if status is None:
                        raise _Unanswered("the receiver closed the connection without answering")
                    raise DeliveryFailed("the receiver closed the connection mid-answer")
        except h11.LocalProtocolError as exc:
            raise DeliveryFailed(f"cannot send the request: {exc}") from None
        except h11.RemoteProtocolError as exc:
            failed = _Unanswered if status is None else DeliveryFailed
            raise failed(f"not an HTTP/1.1 answer: {exc}") from None
        reusable = protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
        if reusable:
            protocol.start_next_cycle()
        return Answer(status, retry_after, bytes(kept)), reusable


def _decompressor(encoding: bytes) -> zlib._Decompress | None:
    """Sent compressed although asked not to: read as what it says it is."""
    if encoding in (b"gzip", b"x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == b"deflate":
        # A zlib stream, as the specification says (a gzip header is taken as well).
        return zlib.decompressobj(zlib.MAX_WBITS | 32)
    return None
