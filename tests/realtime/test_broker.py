from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from servers import RedisServer

from realtime import Broker, BrokerUnavailable, Envelope, create_backend
from realtime.backends.memory import MemoryBackend
from realtime.backends.redis import RedisBackend
from realtime.control import Control, ControlError
from tests.realtime.rt_harness import (
    RealtimeApp,
    ServerThread,
    client,
    ids_of,
    receive,
    receive_events,
)


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def eventually_async(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


def test_the_url_chooses_the_backend() -> None:
    assert isinstance(create_backend(None), MemoryBackend)
    assert isinstance(create_backend("memory://"), MemoryBackend)
    assert isinstance(create_backend("redis://localhost:6379/0"), RedisBackend)
    assert isinstance(create_backend("rediss://localhost:6379/0"), RedisBackend)
    with pytest.raises(ValueError, match="scheme"):
        create_backend("amqp://localhost")


async def test_published_events_reach_the_one_subscription_in_order_per_organization(
    backend_url: str, prefix: str
) -> None:
    received: list[Envelope] = []
    broker = Broker(create_backend(backend_url, prefix=prefix), on_event=received.append)
    await broker.start()
    try:
        assert await broker.ping()
        sent = [
            Envelope.build("message.received", 1 + n % 3, {"n": n}, id=n + 1) for n in range(60)
        ]
        sent.append(Envelope.build("typing", 2, {"conversation_id": 4}))
        for envelope in sent[:30]:
            await broker.publish(envelope)
        # Several at once (the events of one commit): one round trip, the same order.
        await broker.publish(*sent[30:])
        await eventually(lambda: len(received) == len(sent))
        for org in (1, 2, 3):
            of_org = [e for e in sent if e.organization_id == org]
            assert [e for e in received if e.organization_id == org] == of_org
            assert [e.frame for e in received if e.organization_id == org] == [
                e.frame for e in of_org
            ]
    finally:
        await broker.stop()


@pytest.mark.redis
async def test_a_publishing_process_reaches_a_subscribed_one(redis_url: str, prefix: str) -> None:
    received: list[Envelope] = []
    subscriber = Broker(create_backend(redis_url, prefix=prefix), on_event=received.append)
    publisher = Broker(create_backend(redis_url, prefix=prefix))
    await subscriber.start()
    await publisher.start()
    try:
        envelope = Envelope.build("lead.created", 5, {"id": 1}, id=1)
        await publisher.publish(envelope)
        await eventually(lambda: received == [envelope])
    finally:
        await publisher.stop()
        await subscriber.stop()


async def test_an_instruction_reaches_the_control_handler_and_never_the_events_one(
    backend_url: str, prefix: str
) -> None:
    events: list[Envelope] = []
    instructions: list[Control] = []
    broker = Broker(
        create_backend(backend_url, prefix=prefix),
        on_event=events.append,
        on_control=instructions.append,
    )
    await broker.start()
    try:
        said = Control("session.revoked", 3, {"subject": "key:7"})
        await broker.publish_control(said)
        envelope = Envelope.build("lead.created", 3, {"id": 1}, id=1)
        await broker.publish(envelope)
        await eventually(lambda: instructions == [said] and events == [envelope])
    finally:
        await broker.stop()


async def test_a_control_handler_alone_still_subscribes() -> None:
    instructions: list[Control] = []
    broker = Broker(create_backend("memory://"), on_control=instructions.append)
    await broker.start()
    try:
        said = Control("session.revoked", 3, {"subject": "key:7"})
        await broker.publish_control(said)
        await broker.publish(Envelope.build("lead.created", 3, {"id": 1}, id=1))
        await eventually(lambda: instructions == [said])
    finally:
        await broker.stop()


@pytest.mark.redis
async def test_an_instruction_published_by_one_process_reaches_another(
    redis_url: str, prefix: str
) -> None:
    events: list[Envelope] = []
    instructions: list[Control] = []
    subscriber = Broker(
        create_backend(redis_url, prefix=prefix),
        on_event=events.append,
        on_control=instructions.append,
    )
    publisher = Broker(create_backend(redis_url, prefix=prefix))
    await subscriber.start()
    await publisher.start()
    raw = Redis.from_url(redis_url)
    try:
        # Malformed instructions cost only themselves.
        await raw.publish(f"{prefix}:control", b"{not json")
        await raw.publish(f"{prefix}:control", b'{"kind": 1, "organization_id": 2, "data": {}}')
        said = Control("session.revoked", 2, {"subject": "user:4", "epoch": 3, "keys": [9]})
        await publisher.publish_control(said)
        await eventually(lambda: instructions == [said])
        assert events == []
    finally:
        await raw.aclose()
        await publisher.stop()
        await subscriber.stop()


def test_an_instruction_reads_back_as_it_was_written() -> None:
    said = Control("session.revoked", 2, {"subject": "key:5"})
    assert Control.parse(said.encode()) == said
    for raw in (b"{", b"[]", b'{"kind": "x", "organization_id": "2", "data": {}}'):
        with pytest.raises(ControlError):
            Control.parse(raw)


@pytest.mark.redis
async def test_malformed_broker_messages_are_skipped(redis_url: str, prefix: str) -> None:
    received: list[Envelope] = []
    broker = Broker(create_backend(redis_url, prefix=prefix), on_event=received.append)
    await broker.start()
    raw = Redis.from_url(redis_url)
    try:
        await raw.publish(f"{prefix}:org:1", b"{not json")
        await raw.publish(f"{prefix}:org:1", b'{"type": "x"}')
        envelope = Envelope.build("lead.created", 1, {}, id=9)
        await broker.publish(envelope)
        await eventually(lambda: received == [envelope])
    finally:
        await raw.aclose()
        await broker.stop()


@pytest.mark.redis
async def test_one_publish_sends_one_redis_message_per_organization(
    redis_url: str, prefix: str
) -> None:
    raw = Redis.from_url(redis_url)
    watcher = raw.pubsub()
    await watcher.psubscribe(f"{prefix}:org:*")
    broker = Broker(create_backend(redis_url, prefix=prefix))
    await broker.start()
    try:
        sent = [
            Envelope.build("message.received", 1, {"text": "two\nlines"}, id=1),
            Envelope.build("lead.created", 2, {}, id=1),
            Envelope.build("conversation.updated", 1, {}, id=2),
        ]
        await broker.publish(*sent)
        messages: list[tuple[bytes, bytes]] = []
        async with asyncio.timeout(15):
            while len(messages) < 2:
                message = await watcher.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    messages.append((message["channel"], message["data"]))
        assert sorted(messages) == [
            (f"{prefix}:org:1".encode(), sent[0].frame + b"\n" + sent[2].frame),
            (f"{prefix}:org:2".encode(), sent[1].frame),
        ]
    finally:
        await broker.stop()
        await watcher.aclose()
        await raw.aclose()


@pytest.mark.redis
async def test_a_malformed_line_costs_only_itself(redis_url: str, prefix: str) -> None:
    received: list[Envelope] = []
    broker = Broker(create_backend(redis_url, prefix=prefix), on_event=received.append)
    await broker.start()
    raw = Redis.from_url(redis_url)
    try:
        first = Envelope.build("lead.created", 1, {}, id=1)
        second = Envelope.build("lead.created", 1, {}, id=2)
        await raw.publish(f"{prefix}:org:1", first.frame + b"\n{not json\n" + second.frame)
        await eventually(lambda: received == [first, second])
    finally:
        await raw.aclose()
        await broker.stop()


@pytest.mark.redis
async def test_a_lost_subscription_comes_back_and_says_so(own_redis: RedisServer) -> None:
    received: list[Envelope] = []
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    broker = Broker(
        create_backend(own_redis.url), on_event=received.append, on_reconnected=on_reconnected
    )
    await broker.start()
    try:
        first = Envelope.build("lead.created", 1, {}, id=1)
        await broker.publish(first)
        await eventually(lambda: received == [first])

        own_redis.stop()
        # Publishing fails at once instead of hanging: the outbox still has the event.
        with pytest.raises(BrokerUnavailable):
            await broker.publish(Envelope.build("lead.created", 1, {}, id=2))
        await eventually_async(lambda: _not(broker.ping()))

        own_redis.start()
        await asyncio.wait_for(reconnected.wait(), 30)
        assert broker.reconnects == 1
        assert await broker.ping()
        third = Envelope.build("lead.created", 1, {}, id=3)
        await broker.publish(third)
        await eventually(lambda: received == [first, third])
    finally:
        await broker.stop()


@pytest.mark.redis
async def test_a_redis_that_stops_answering_is_noticed_too(own_redis: RedisServer) -> None:
    received: list[Envelope] = []
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    backend = RedisBackend(own_redis.url, timeout=0.5, health_interval=0.2)
    broker = Broker(backend, on_event=received.append, on_reconnected=on_reconnected)
    await broker.start()
    assert own_redis.proc is not None
    try:
        # Frozen, not dead: connections stay open and nothing ever answers.
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            await eventually(lambda: not backend.subscribed)
            with pytest.raises(BrokerUnavailable):
                await broker.publish(Envelope.build("lead.created", 1, {}, id=1))
            assert not await broker.ping()
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        await asyncio.wait_for(reconnected.wait(), 30)
        envelope = Envelope.build("lead.created", 1, {}, id=2)
        await broker.publish(envelope)
        await eventually(lambda: received == [envelope])
    finally:
        await broker.stop()


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


@pytest.mark.redis
async def test_clients_get_every_event_once_across_a_redis_restart(
    own_redis: RedisServer,
) -> None:
    app = RealtimeApp(own_redis.url)
    server = ServerThread(app.app).start()
    try:
        token = app.token(1, user_id=1)
        clients = [await client(server, token) for _ in range(5)]
        for ws in clients:
            assert (await receive(ws))["type"] == "session.ready"

        raw = Redis.from_url(own_redis.url)
        # One pattern subscription for the whole process, however many sockets it holds.
        assert await raw.pubsub_numpat() == 1
        await raw.aclose()

        producing = asyncio.ensure_future(server.call(app.produce(1, 300, pause=0.004)))
        await eventually(lambda: len(app.log.ids(1)) >= 100)
        own_redis.stop()
        await eventually(lambda: app.publish_failures >= 20)
        own_redis.start()
        await producing

        expected = app.log.ids(1)
        for ws in clients:
            assert ids_of(await receive_events(ws, expected[-1])) == expected
            await ws.close()
        # The reconnect hook ran and the catch-up filled the gap.
        assert app.reconnects >= 1
        raw = Redis.from_url(own_redis.url)
        assert await raw.pubsub_numpat() == 1
        await raw.aclose()
    finally:
        server.stop()
