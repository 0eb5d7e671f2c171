"""`python -m bench.webhook_receiver PORT`: a fast webhook receiver for `bench.webhooks`.

A process of its own (so that it takes no time from the load generator), on asyncio
and httptools with HTTP/1.1 keep-alive: it answers every POST with 204 at once and
notes (arrival time, the envelope's ``timestamp``) for each. ``GET /count`` answers how
many have arrived, ``GET /arrivals`` all of them as JSON pairs of Unix seconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from typing import cast

import httptools
import orjson

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


class Arrivals:
    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []

    def note(self, body: bytes) -> None:
        stamp = orjson.loads(body)["timestamp"]
        self.seen.append((time.time(), datetime.fromisoformat(stamp).timestamp()))


class ReceiverProtocol(asyncio.Protocol):
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        if self.parser.get_method() == b"POST":
            self.arrivals.note(b"".join(self.body))
            self.transport.write(NO_CONTENT)
            return
        if self.url == b"/count":
            answer = orjson.dumps(len(self.arrivals.seen))
        else:
            answer = orjson.dumps(self.arrivals.seen)
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(answer)}\r\n\r\n".encode()
            + answer
        )


async def serve(port: int) -> None:
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ReceiverProtocol(arrivals), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
