"""Lean WebSocket clients: many sockets in one process, each frame looked at once.

A client is an `asyncio.Protocol` that does the RFC 6455 handshake itself and reads
the server's unmasked frames straight out of the bytes it receives: no per-frame
objects, no UTF-8 decoding, no JSON parsing of events. The event a benchmark sent
carries a marker in its text (`bench:<phase>:<seq>:<sent µs>;`, see `drivers.marker`)
that `bytes.find` locates; the envelope's `id` is read from the frame's first field.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
from collections.abc import Callable, Mapping
from time import monotonic_ns
from typing import Any, cast

import orjson

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MARKER = b"bench:"
_ID_PREFIX = b'{"id":'
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def now_us() -> int:
    return monotonic_ns() // 1000


class Tally:
    """What every reading client of one run received, shared by all of them.

    `phase` selects the events that count: warm-up events carry another phase letter
    and are ignored once the measured phase starts. With `track_pending`, each event
    counts down the readers still owed it, and `waiters` learn when it reached them all
    (the closed loop keeps a bounded number of events in flight that way).
    """

    def __init__(self) -> None:
        self.phase = ord("w")
        self.deliveries = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.ignored_frames = 0
        self.frame_bytes = 0
        self.latencies_us: list[int] = []
        self.pending: dict[int, int] = {}
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.readers: list[WsClient] = []
        self.lost_readers = 0
        self.closing = False

    def start_phase(self, letter: str) -> None:
        self.phase = ord(letter)
        self.deliveries = self.duplicates = self.out_of_order = 0
        self.ignored_frames = self.frame_bytes = 0
        self.latencies_us = []
        self.pending.clear()
        for future in self.waiters.values():
            future.cancel()
        self.waiters.clear()
        for client in self.readers:
            client.seen = bytearray()

    @property
    def live_readers(self) -> int:
        return sum(1 for c in self.readers if not c.lost)

    def expect(self, seq: int) -> asyncio.Future[None]:
        """Track `seq` until every live reader has it; the future resolves then."""
        future = asyncio.get_running_loop().create_future()
        self.pending[seq] = self.live_readers
        self.waiters[seq] = future
        return future

    def forget(self, seq: int) -> None:
        self.pending.pop(seq, None)
        future = self.waiters.pop(seq, None)
        if future is not None and not future.done():
            future.cancel()

    def delivered(self, seq: int) -> None:
        left = self.pending.get(seq)
        if left is None:
            return
        if left > 1:
            self.pending[seq] = left - 1
            return
        del self.pending[seq]
        future = self.waiters.pop(seq, None)
        if future is not None and not future.done():
            future.set_result(None)

    def reader_lost(self, client: WsClient) -> None:
        """A reader went away: stop waiting on it for the events it has not seen."""
        self.lost_readers += 1
        seen = client.seen
        for seq in list(self.pending):
            if seq >= len(seen) or not seen[seq]:
                self.delivered(seq)


class WsClient(asyncio.Protocol):
    """One WebSocket connection. `ready` resolves with the server's first frame."""

    def __init__(self, request: bytes, key: bytes, tally: Tally | None) -> None:
        self._request = request
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.open = False
        # The first frame (session.ready) has come: later frames are events.
        self.streaming = False
        self.lost = False
        self.close_code: int | None = None
        self.received_bytes = 0
        self.seen = bytearray()
        self.last_id = 0
        self._buffer = b""
        self._fragments: list[bytes] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready: {exc!r}"))
        if not self.done.done():
            self.done.set_result(None)
        tally = self.tally
        if tally is not None and not tally.closing and self in tally.readers:
            tally.reader_lost(self)

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if not self.open:
            data = self._handshake(data)
            if not data:
                return
        now = monotonic_ns() // 1000
        pos, size = 0, len(data)
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            head = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                head = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = pos + 10
            end = head + length
            if end > size:
                break
            first = data[pos]
            if first == 0x81:  # FIN + text: nearly every frame
                self.on_text(data, head, end, now)
            else:
                self._other_frame(first, data[head:end], now)
            pos = end
        if pos < size:
            self._buffer = data[pos:]

    # -- frames ---------------------------------------------------------------------

    def on_text(self, data: bytes, start: int, end: int, now: int) -> None:
        tally = self.tally
        if not self.streaming or tally is None:
            if not self.streaming:
                self.streaming = True
                if not self.ready.done():  # not given up on by a timeout
                    self.ready.set_result(orjson.loads(data[start:end]))
            return
        # The hot path: a marker search and three int() per frame, nothing decoded.
        at = data.find(_MARKER, start, end)
        if at < 0 or data[at + 6] != tally.phase:
            tally.ignored_frames += 1
            return
        colon = data.find(b":", at + 8, end)
        seq = int(data[at + 8 : colon])
        sent = int(data[colon + 1 : data.find(b";", colon, end)])
        seen = self.seen
        if seq >= len(seen):
            seen.extend(bytes(seq + 1024 - len(seen)))
        elif seen[seq]:
            tally.duplicates += 1
            return
        seen[seq] = 1
        tally.deliveries += 1
        tally.frame_bytes += end - start
        tally.latencies_us.append(now - sent)
        if data.startswith(_ID_PREFIX, start):
            event_id = int(data[start + 6 : data.find(b",", start, end)])
            if event_id < self.last_id:
                tally.out_of_order += 1
            else:
                self.last_id = event_id
        if tally.pending:
            tally.delivered(seq)

    def _other_frame(self, first: int, payload: bytes, now: int) -> None:
        opcode, fin = first & 0x0F, first & 0x80
        if opcode == OP_PING:
            self.send_frame(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.send_frame(OP_CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()
        elif opcode in (OP_TEXT, OP_CONTINUATION):
            parts = self._fragments = ([] if opcode == OP_TEXT else self._fragments or [])
            parts.append(payload)
            if fin:
                whole = b"".join(parts)
                self._fragments = None
                self.on_text(whole, 0, len(whole), now)

    def _handshake(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self._buffer = data
            return b""
        head = data[:end]
        status_line = head.split(b"\r\n", 1)[0]
        accept = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-accept":
                accept = value.strip()
        if b" 101 " not in status_line + b" " or accept != self._accept:
            if not self.ready.done():
                self.ready.set_exception(ConnectionError(f"handshake refused: {head[:200]!r}"))
            if self.transport is not None:
                self.transport.close()
            return b""
        self.open = True
        return data[end + 4 :]

    def send_frame(self, opcode: int, payload: bytes = b"") -> None:
        """A masked client frame (control frames and the like: never on a hot path)."""
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send_frame(OP_CLOSE, (1000).to_bytes(2, "big"))
            self.transport.close()


def handshake_request(
    host: str, port: int, path: str, headers: Mapping[str, str]
) -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


async def connect(
    host: str,
    port: int,
    path: str,
    headers: Mapping[str, str],
    tally: Tally | None,
    *,
    factory: Callable[[bytes, bytes, Tally | None], WsClient] = WsClient,
    receive_buffer: int | None = None,
    timeout: float = 30.0,
) -> WsClient:
    """Open one client and wait for the server's first frame (`session.ready`)."""
    loop = asyncio.get_running_loop()
    request, key = handshake_request(host, port, path, headers)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer is not None:
            # Set before connecting, so the window the server sees stays this small.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    _, client = await loop.create_connection(lambda: factory(request, key, tally), sock=sock)
    try:
        async with asyncio.timeout(timeout):
            await client.ready
    except BaseException:
        client.close()
        raise
    return client


async def connect_many(
    count: int,
    address: Any,
    path: str,
    headers: Mapping[str, str],
    tally: Tally | None,
    *,
    concurrency: int = 100,
) -> list[WsClient]:
    """Open `count` clients, `concurrency` handshakes at a time; `address(i)` gives
    the (host, port) of client i, so clients can be spread over several servers."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> WsClient:
        host, port = address(index)
        async with gate:
            return await connect(host, port, path, headers, tally)

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    clients = [r for r in results if isinstance(r, WsClient)]
    failures = [r for r in results if not isinstance(r, WsClient)]
    if failures:
        for client in clients:
            client.close()
        raise ConnectionError(f"{len(failures)} of {count} clients failed: {failures[0]!r}")
    return clients


async def close_all(clients: list[WsClient], timeout: float = 5.0) -> None:
    for client in clients:
        client.close()
    pending = [c.done for c in clients if not c.done.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
        for client in clients:
            if client.transport is not None and not client.done.done():
                client.transport.abort()
