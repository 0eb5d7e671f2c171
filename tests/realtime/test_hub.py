"""The registry and dispatch: who gets what, and the hub on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from realtime import Hub
from tests.realtime.fakes import FakeSocket, event, eventually, live, settle
from tests.realtime.rt_harness import (
    RealtimeApp,
    ServerThread,
    client,
    drain,
    ids_of,
    nothing_more,
    receive,
    receive_events,
    stuck_client,
)


async def test_every_recipient_is_handed_the_same_serialized_object() -> None:
    hub = Hub()
    sockets = [FakeSocket() for _ in range(3)]
    for socket in sockets:
        live(hub, socket)
    await settle()
    envelope = event(1, conversation_id=4)
    hub.dispatch(envelope)
    await settle()
    assert all(socket.sent[0] is envelope.text for socket in sockets)
    assert (hub.counters.events_dispatched, hub.counters.deliveries) == (1, 3)


async def test_filters_by_event_type_and_conversation() -> None:
    hub = Hub()
    by_type, by_conversation, everything = FakeSocket(), FakeSocket(), FakeSocket()
    live(hub, by_type, events=["message.received"])
    live(hub, by_conversation, conversation_ids=[7])
    live(hub, everything)
    await settle()
    hub.dispatch(event(1, conversation_id=7))
    hub.dispatch(event(2, conversation_id=8))
    hub.dispatch(event(3, "lead.created"))
    hub.dispatch(event(4, "conversation.updated", id=7))
    hub.dispatch(event(5, "conversation.updated", id=8))
    await settle()
    assert by_type.ids() == [1, 2]
    # Events about no conversation pass a conversation filter.
    assert by_conversation.ids() == [1, 3, 4]
    assert everything.ids() == [1, 2, 3, 4, 5]


async def test_an_organization_never_sees_another_ones_events() -> None:
    hub = Hub()
    first, second = FakeSocket(), FakeSocket()
    live(hub, first, org=1)
    live(hub, second, org=2)
    await settle()
    hub.dispatch(event(1, org=1))
    hub.dispatch(event(None, "typing", org=1, conversation_id=3))
    await settle()
    assert first.types() == ["message.received", "typing"]
    assert second.sent == []


async def test_an_ephemeral_event_skips_the_connection_that_caused_it() -> None:
    hub = Hub()
    sender, other = FakeSocket(), FakeSocket()
    connection = live(hub, sender)
    live(hub, other)
    await settle()
    hub.dispatch(event(None, "typing", conversation_id=3, connection_id=connection.id))
    await settle()
    assert sender.sent == []
    assert other.types() == ["typing"]


async def test_close_all_closes_every_connection_with_the_code() -> None:
    hub = Hub()
    sockets = [FakeSocket() for _ in range(4)]
    connections = [live(hub, socket, org=n % 2) for n, socket in enumerate(sockets)]
    await settle()
    await hub.close_all(1012)
    assert [socket.close_requested for socket in sockets] == [1012] * 4
    assert hub.connection_count == 0
    for connection in connections:
        await connection.finish()
    assert hub.counters.connections_closed == 4


# The same behaviour on a real server, with real sockets.


async def read_into(ws: ClientConnection, ids: list[int]) -> None:
    while True:
        ids.append(orjson.loads(await ws.recv())["id"])


async def test_a_slow_consumer_is_evicted_and_the_others_get_everything() -> None:
    app = RealtimeApp(
        hub=Hub(max_queue_messages=256, max_queue_bytes=512 * 1024, close_timeout=10.0)
    )
    server = ServerThread(app.app).start()
    try:
        token = app.token(1, user_id=1)
        readers = [await client(server, token) for _ in range(100)]
        for ws in readers:
            await receive(ws)
        # Stops reading its socket; once evicted, it reads what had been sent.
        slow = await client(server, token, max_queue=1, small_buffer=True)
        await receive(slow)
        await eventually(lambda: app.hub.connection_count == 101)

        async def read_once_evicted() -> list[int]:
            await eventually(lambda: app.hub.counters.evictions == 1)
            got = []
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(30):
                    while True:
                        got.append(orjson.loads(await slow.recv())["id"])
            return got

        slow_reading = asyncio.ensure_future(read_once_evicted())
        per_reader: list[list[int]] = [[] for _ in readers]
        reading = [
            asyncio.ensure_future(read_into(ws, ids))
            for ws, ids in zip(readers, per_reader, strict=True)
        ]

        def all_read(last: int) -> Callable[[], bool]:
            return lambda: all(ids[-1:] == [last] for ids in per_reader)

        produced: list[int] = []
        # 8 MB in all: more than the kernel buffers take in before the server's send blocks.
        # Batches keep the readers (all in this one test process) from falling behind too.
        for _ in range(20):
            produced += await server.call(app.produce(1, 100, size=4000))
            await eventually(all_read(produced[-1]))
        for task in reading:
            task.cancel()
        assert all(ids == produced for ids in per_reader)
        assert app.hub.counters.evictions == 1
        assert app.hub.connection_count == 100

        # What the slow client got is a gapless prefix, then close code 4008: it can resume.
        received = await slow_reading
        assert slow.close_code == 4008
        assert 0 < len(received) < len(produced)
        assert received == produced[: len(received)]
        # Its queue stayed within bounds and was released.
        assert app.hub.counters.aborted == 0
        for ws in readers:
            await ws.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("implementation", "compression", "direct"),
    [
        ("websockets-sansio", None, True),
        # Compressed frames differ from one connection to the next: each is encoded apart.
        ("websockets-sansio", "deflate", False),
        ("wsproto", None, False),
    ],
)
async def test_events_reach_clients_whichever_way_the_server_writes_them(
    implementation: str, compression: str | None, direct: bool
) -> None:
    app = RealtimeApp()
    server = ServerThread(
        app.app, ws=implementation, ws_per_message_deflate=compression is not None
    ).start()
    try:
        token = app.token(1, user_id=1)
        sockets = [await client(server, token, compression=compression) for _ in range(3)]
        for ws in sockets:
            assert (await receive(ws))["type"] == "session.ready"
        await eventually(lambda: all(c.live_after is not None for c in app.hub.connections(1)))
        sizes = [0, 100, 126, 70_000]
        ids = await server.call(app.produce(1, 40, data={"note": "é"}, size=sizes[1]))
        for size in sizes:
            ids += await server.call(app.produce(1, 1, size=size))
        for ws in sockets:
            frames = await receive_events(ws, ids[-1])
            assert ids_of(frames) == ids
            assert [len(f["data"].get("text", "")) for f in frames[-4:]] == sizes
            await nothing_more(ws)
        assert [c.direct for c in app.hub.connections(1)] == [direct] * 3
        for ws in sockets:
            await ws.close()
    finally:
        server.stop()


# uvicorn warns that its legacy `websockets` implementation is deprecated; it is still served.
@pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated")
@pytest.mark.parametrize("implementation", ["websockets-sansio", "websockets", "wsproto"])
async def test_a_stuck_socket_is_dropped_whatever_the_websocket_implementation(
    implementation: str,
) -> None:
    if implementation == "wsproto":
        pytest.importorskip("wsproto")
    app = RealtimeApp(hub=Hub(max_queue_messages=64, close_timeout=0.5))
    server = ServerThread(app.app, ws=implementation).start()
    try:
        dead = await asyncio.to_thread(stuck_client, server, app.token(1, user_id=1))
        await eventually(lambda: app.hub.connection_count == 1)
        # Enough to fill the kernel buffers and then the queue, whatever their sizes.
        while app.hub.counters.evictions == 0:
            await server.call(app.produce(1, 200, size=2000))
        # The server really let go of the socket: uvicorn dropped the connection.
        await eventually(lambda: server.open_sockets() == 0)
        assert app.hub.counters.aborted == 1
        assert await asyncio.to_thread(drain, dead) in ("closed", "reset")
        dead.close()
    finally:
        server.stop()


async def test_an_idle_peer_that_stops_answering_pings_is_dropped() -> None:
    app = RealtimeApp(hub=Hub(close_timeout=0.5))
    # What `inbox serve` sets (20 s each), shortened for the test.
    server = ServerThread(app.app, ws_ping_interval=0.3, ws_ping_timeout=0.3).start()
    try:
        silent = await asyncio.to_thread(stuck_client, server, app.token(1, user_id=1))
        await eventually(lambda: app.hub.connection_count == 1)
        # No event flows: only the unanswered ping can tell the peer is gone.
        await eventually(lambda: server.open_sockets() == 0)
        await eventually(lambda: app.hub.connection_count == 0)
        silent.close()
    finally:
        server.stop()
