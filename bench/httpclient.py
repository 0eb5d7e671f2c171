"""A lean HTTP/1.1 client: keep-alive connections, one request at a time on each.

The webhook drivers post thousands of requests a second from the same process that
reads the WebSockets, so a general-purpose client's per-request cost would show up
in the generator's CPU. This one writes a request and reads a `Content-Length` body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import cast


class HttpError(Exception):
    """The connection failed or the response could not be read."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self._buffer[:head_end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        end = head_end + 4 + length
        if len(self._buffer) < end:
            return
        status = int(head[9:12])
        body = self._buffer[head_end + 4 : end]
        self._buffer = self._buffer[end:]
        waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._waiter


class HttpPool:
    """Up to `size` keep-alive connections to one server; requests wait for a free one."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._opened = 0

    async def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float = 20.0,
        method: str = "POST",
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        # The timeout covers the wait for a free connection too: a request that could
        # not even be sent in time is a failure, not a late success.
        async with asyncio.timeout(timeout):
            connection = await self._acquire()
            try:
                result = await connection.request(raw)
            except BaseException:
                self._discard(connection)
                raise
        self._idle.put_nowait(connection)
        return result

    async def _acquire(self) -> _Connection:
        while True:
            if self._idle.empty() and self._opened < self.size:
                self._opened += 1
                try:
                    _, connection = await asyncio.get_running_loop().create_connection(
                        _Connection, self.host, self.port
                    )
                except BaseException:
                    self._opened -= 1
                    raise
                return connection
            connection = await self._idle.get()
            if not connection.closed:
                return connection
            self._opened -= 1

    def _discard(self, connection: _Connection) -> None:
        self._opened -= 1
        if connection.transport is not None:
            connection.transport.close()

    def close(self) -> None:
        while not self._idle.empty():
            connection = self._idle.get_nowait()
            if connection.transport is not None:
                connection.transport.close()
        self._opened = 0
