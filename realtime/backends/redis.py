"""Redis pub/sub: every process publishes to a channel per organization and holds one
pattern subscription that covers them all.

A message holds one or more envelopes, one per line: the events one call publishes
for an organization travel together. Receiving a message costs far more than parsing
an envelope, and a group commit publishes dozens at once. A frame never holds a
newline of its own: JSON escapes it inside strings, and orjson writes no other.

Instructions travel on one channel of their own, outside the events' pattern, one
per message.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..control import Control, ControlError
from ..envelope import Envelope, EnvelopeError
from ..metrics import BROKER_CONNECTED
from .base import BrokerUnavailable, all_channels, channel, control_channel

logger = logging.getLogger(__name__)

_FAILURES = (RedisError, OSError, TimeoutError)
_LINE = b"\n"


class RedisBackend:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "realtime",
        timeout: float = 2.0,
        queue_size: int = 10_000,
        health_interval: float = 5.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._timeout = timeout
        self._queue_size = queue_size
        self._health_interval = health_interval
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._client: Redis | None = None
        self._subscriber: Redis | None = None
        self._queue: asyncio.Queue[Envelope | Control | None] | None = None
        self._control = control_channel(prefix)
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = False

    async def connect(self) -> None:
        self._queue = asyncio.Queue(self._queue_size)
        # One retry without delay replaces a pooled connection that died with the server;
        # beyond that, publish fails fast and the caller relies on catching up.
        self._client = self._redis(retries=1)
        # The subscription gets no silent retries: a loss must be seen, counted and caught
        # up, which redis-py's automatic resubscription would hide.
        self._subscriber = self._redis(retries=0)

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait([self._listener])
            self._listener = None
        for client in (self._client, self._subscriber):
            if client is not None:
                await client.aclose()
        self._client = self._subscriber = None

    async def subscribe(self) -> None:
        first_attempt = asyncio.get_running_loop().create_future()
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(first_attempt), name="realtime-redis-listener"
        )
        # Startup proceeds either way: while Redis is down, ping() says so and the
        # listener keeps retrying.
        await first_attempt

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        client = self._client
        if client is None:
            raise BrokerUnavailable("not connected")
        frames: dict[str, list[bytes]] = {}
        for envelope in envelopes:
            frames.setdefault(self._channel(envelope), []).append(envelope.frame)
        messages = [(name, _LINE.join(lines)) for name, lines in frames.items()]
        try:
            async with asyncio.timeout(self._timeout):
                if len(messages) == 1:
                    await client.publish(*messages[0])
                    return
                # One round trip; Redis runs the commands in the order they were sent.
                async with client.pipeline(transaction=False) as pipe:
                    for name, message in messages:
                        pipe.publish(name, message)
                    await pipe.execute()
        except _FAILURES as exc:
            raise BrokerUnavailable(f"publishing to Redis failed: {exc!r}") from exc

    async def publish_control(self, control: Control) -> None:
        client = self._client
        if client is None:
            raise BrokerUnavailable("not connected")
        try:
            async with asyncio.timeout(self._timeout):
                await client.publish(self._control, control.encode())
        except _FAILURES as exc:
            raise BrokerUnavailable(f"publishing to Redis failed: {exc!r}") from exc

    def _channel(self, envelope: Envelope) -> str:
        return channel(self._prefix, envelope.organization_id)

    async def next_message(self) -> Envelope | Control | None:
        if self._queue is None:
            raise RuntimeError("RedisBackend.connect() has not been called")
        return await self._queue.get()

    async def ping(self) -> bool:
        if self._client is None or (self._listener is not None and not self.subscribed):
            return False
        try:
            async with asyncio.timeout(self._timeout):
                return bool(await self._client.ping())
        except _FAILURES:
            return False

    def _redis(self, *, retries: int) -> Redis:
        return Redis.from_url(
            self._url,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), retries),
        )

    async def _listen(self, first_attempt: asyncio.Future[None]) -> None:
        assert self._subscriber is not None and self._queue is not None
        failures = 0
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                await self._subscribe(pubsub)
                self.subscribed = True
                BROKER_CONNECTED.set(1)
                if failures:
                    logger.warning("Redis subscription restored after %d failed attempts", failures)
                    # Tell the consumer that events may have been missed.
                    await self._queue.put(None)
                failures = 0
                if not first_attempt.done():
                    first_attempt.set_result(None)
                await self._read(pubsub)
            except _FAILURES as exc:
                failures += 1
                logger.warning("Redis subscription failed (attempt %d): %r", failures, exc)
            finally:
                self.subscribed = False
                BROKER_CONNECTED.set(0)
                await self._close(pubsub)
            if not first_attempt.done():
                first_attempt.set_result(None)
            await asyncio.sleep(self._backoff(failures))

    async def _subscribe(self, pubsub: PubSub) -> None:
        async with asyncio.timeout(self._timeout):
            await pubsub.psubscribe(all_channels(self._prefix))
            await pubsub.subscribe(self._control)
            # Only once Redis confirms is every later publish sure to reach us; catching up
            # before that point could miss an event published in between.
            confirmed: set[str] = set()
            while confirmed != {"psubscribe", "subscribe"}:
                message = await pubsub.get_message(timeout=self._timeout)
                if message is not None and message["type"] in ("psubscribe", "subscribe"):
                    confirmed.add(message["type"])

    async def _read(self, pubsub: PubSub) -> None:
        assert self._queue is not None
        awaiting_pong = False
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=self._health_interval
            )
            if message is None:
                # A silent socket may be a dead one: ask, and give up if nothing comes back.
                if awaiting_pong:
                    raise TimeoutError("Redis did not answer PING on the subscription")
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            if message["type"] == "message":
                await self._instructed(message["data"])
                continue
            if message["type"] != "pmessage":
                continue
            for frame in message["data"].split(_LINE):
                try:
                    envelope = Envelope.parse(frame)
                except EnvelopeError as exc:
                    logger.warning("dropping a malformed broker message: %s", exc)
                    continue
                await self._queue.put(envelope)

    async def _instructed(self, raw: bytes) -> None:
        assert self._queue is not None
        try:
            control = Control.parse(raw)
        except ControlError as exc:
            logger.warning("dropping a malformed broker instruction: %s", exc)
            return
        await self._queue.put(control)

    async def _close(self, pubsub: PubSub) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                # Through a typed name: redis-py annotated aclose() only in 8.2.
                aclose: Callable[[], Awaitable[None]] = pubsub.aclose
                await aclose()
        except _FAILURES:
            pass

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0 ** min(failures, 16))
        # Jitter spreads the reconnects of many processes after a shared outage.
        return ceiling / 2 + random.uniform(0, ceiling / 2)
