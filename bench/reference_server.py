"""REFERENCE ONLY — not the service, and not a pattern to copy.

A deliberately minimal WebSocket broadcast over Redis pub/sub, the yardstick the
benchmark measures the service against in the same run under the same workload:
Starlette + uvicorn, no authentication, no persistence, no per-client queue, one
plain `await send` loop (so one client that stops reading stalls all the others).

    POST /publish   the body is published to Redis as is (one event)
    GET  /ws        every published body is sent to every client as a text frame

Run: BENCH_REFERENCE_REDIS_URL=redis://127.0.0.1:6379/0 \
     uvicorn bench.reference_server:app --ws-per-message-deflate false
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

REDIS_URL = os.environ.get("BENCH_REFERENCE_REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL = "bench-reference"
READY = '{"type":"session.ready"}'

redis = Redis.from_url(REDIS_URL)
clients: set[WebSocket] = set()


async def publish(request: Request) -> Response:
    await redis.publish(CHANNEL, await request.body())
    return Response(b'{"published":1}', media_type="application/json")


async def livez(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def websocket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(READY)
    clients.add(ws)
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        clients.discard(ws)


async def broadcast(pubsub: PubSub) -> None:
    async for message in pubsub.listen():
        if message["type"] != "message":
            continue
        text = message["data"].decode()
        for ws in list(clients):
            try:
                await ws.send_text(text)
            except Exception:
                clients.discard(ws)


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    pubsub = redis.pubsub()
    await pubsub.subscribe(CHANNEL)  # before serving: no publish is missed
    task = asyncio.create_task(broadcast(pubsub))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()


app = Starlette(
    routes=[
        Route("/publish", publish, methods=["POST"]),
        Route("/livez", livez, methods=["GET"]),
        WebSocketRoute("/ws", websocket),
    ],
    lifespan=lifespan,
)
