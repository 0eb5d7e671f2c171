"""The in-process broker: one process, nothing to install."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..control import Control
from ..envelope import Envelope
from ..metrics import BROKER_CONNECTED


class MemoryBackend:
    def __init__(self, *, queue_size: int = 10_000) -> None:
        self._queue_size = queue_size
        self._queue: asyncio.Queue[Envelope | Control | None] | None = None
        self._subscribed = False

    async def connect(self) -> None:
        self._queue = asyncio.Queue(self._queue_size)
        BROKER_CONNECTED.set(1)

    async def disconnect(self) -> None:
        self._subscribed = False
        BROKER_CONNECTED.set(0)

    async def subscribe(self) -> None:
        self._subscribed = True

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        # The envelope object itself is handed over: nothing to serialize or parse here.
        # A full queue makes publishers wait for the dispatcher instead of growing memory.
        if self._subscribed:
            queue = self._ready()
            for envelope in envelopes:
                await queue.put(envelope)

    async def publish_control(self, control: Control) -> None:
        if self._subscribed:
            await self._ready().put(control)

    async def next_message(self) -> Envelope | Control | None:
        return await self._ready().get()

    async def ping(self) -> bool:
        return True

    def _ready(self) -> asyncio.Queue[Envelope | Control | None]:
        if self._queue is None:
            raise RuntimeError("MemoryBackend.connect() has not been called")
        return self._queue
