"""The broker front: publish envelopes and instructions, and feed each received one to
its handler.

One process holds one subscription; `on_event` (the hub's dispatch) fans out locally,
`on_control` carries out instructions (a revocation), which no client ever sees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from .backends.base import BrokerBackend, BrokerUnavailable
from .backends.memory import MemoryBackend
from .backends.redis import RedisBackend
from .control import Control
from .envelope import Envelope
from .metrics import BROKER_RECONNECTS

__all__ = ["Broker", "BrokerBackend", "BrokerUnavailable", "Control", "create_backend"]

logger = logging.getLogger(__name__)

_YIELD_EVERY = 16


def create_backend(url: str | None, *, prefix: str = "realtime") -> BrokerBackend:
    """`memory://` or None: in-process. `redis://`, `rediss://`, `unix://`: Redis pub/sub."""
    scheme = urlsplit(url).scheme if url else "memory"
    if scheme == "memory":
        return MemoryBackend()
    if scheme in ("redis", "rediss", "unix"):
        assert url is not None
        return RedisBackend(url, prefix=prefix)
    raise ValueError(f"unsupported broker URL scheme {scheme!r}")


class Broker:
    def __init__(
        self,
        backend: BrokerBackend,
        *,
        on_event: Callable[[Envelope], object] | None = None,
        on_control: Callable[[Control], object] | None = None,
        on_reconnected: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """`on_event` and `on_control` both None: publish only (a worker that holds no
        WebSockets); `on_event` None alone: events received are dropped.

        `on_control` None: instructions received are dropped.

        `on_reconnected` runs after the subscription came back from a loss, before any
        event received after it is handed to `on_event`: the place to catch up from the
        outbox, e.g. `lambda: hub.catch_up(event_log)`.
        """
        self.backend = backend
        self._on_event = on_event
        self._on_control = on_control
        self._on_reconnected = on_reconnected
        self._pump: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def start(self) -> None:
        await self.backend.connect()
        if self._on_event is not None or self._on_control is not None:
            await self.backend.subscribe()
            self._pump = asyncio.get_running_loop().create_task(
                self._run(self._on_event), name="realtime-broker-pump"
            )

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.wait([self._pump])
            self._pump = None
        await self.backend.disconnect()

    async def publish(self, *envelopes: Envelope) -> None:
        """Publish each organization's events in the order given; several at once share
        one round trip to the broker."""
        if envelopes:
            await self.backend.publish(envelopes)

    async def publish_control(self, control: Control) -> None:
        """Say an instruction to every process, this one included."""
        await self.backend.publish_control(control)

    async def ping(self) -> bool:
        return await self.backend.ping()

    async def _run(self, on_event: Callable[[Envelope], object] | None) -> None:
        next_message = self.backend.next_message
        handled = 0
        while True:
            handled += 1
            if handled % _YIELD_EVERY == 0:
                # Reading a non-empty queue does not yield: let the writers drain now and
                # then, or a burst would pile up in every connection's queue at once.
                await asyncio.sleep(0)
            envelope = await next_message()
            if isinstance(envelope, Control):
                self._instructed(envelope)
                continue
            if envelope is None:
                self.reconnects += 1
                BROKER_RECONNECTS.inc()
                if self._on_reconnected is not None:
                    try:
                        await self._on_reconnected()
                    except Exception:
                        logger.exception("the broker reconnect hook failed")
                continue
            if on_event is None:
                continue
            try:
                on_event(envelope)
            except Exception:
                logger.exception("handling event %s failed", envelope.id)

    def _instructed(self, control: Control) -> None:
        if self._on_control is None:
            return
        try:
            self._on_control(control)
        except Exception:
            logger.exception("carrying out instruction %s failed", control.kind)
