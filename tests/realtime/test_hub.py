from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame
from websockets.streams import StreamReader

from realtime import Envelope, Hub, ReplayTruncated
from realtime.hub import Connection, SocketClosed
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


class FakeSocket:
    """Records what the hub sends; `stuck` models a peer that stopped reading."""

    takes_frames = False

    def __init__(self, *, stuck: bool = False) -> None:
        self.sent: list[str] = []
        self.close_requested: int | None = None
        self.aborted = False
        self._flowing = asyncio.Event()
        if not stuck:
            self._flowing.set()

    async def send_text(self, text: str) -> None:
        await self._flowing.wait()
        self.sent.append(text)

    async def close(self, code: int) -> None:
        self.close_requested = code
        await self._flowing.wait()

    def abort(self) -> None:
        self.aborted = True

    def types(self) -> list[str]:
        return [orjson.loads(text)["type"] for text in self.sent]

    def ids(self) -> list[int]:
        return [body["id"] for body in map(orjson.loads, self.sent) if "id" in body]


class FrameSocket(FakeSocket):
    """A transport that takes encoded frames; `stuck` ones keep them all unsent."""

    takes_frames = True

    def __init__(self, *, stuck: bool = False) -> None:
        super().__init__(stuck=stuck)
        self.writes: list[bytes] = []
        self.unsent = 0
        self.gone = False

    def write_frame(self, frame: bytes) -> int:
        if self.gone:
            raise SocketClosed
        self.writes.append(frame)
        self.sent.extend(texts_of(frame))
        if not self._flowing.is_set():
            self.unsent += len(frame)
        return self.unsent


def texts_of(data: bytes) -> list[str]:
    """Decode the server frames of one write as a client would."""
    reader = StreamReader()
    reader.feed_data(data)
    texts = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            texts.append(str(done.value.data.decode()))
        else:
            raise AssertionError("an incomplete frame")
    return texts


class ListLog:
    def __init__(self, events: list[Envelope], *, truncated: bool = False) -> None:
        self.events = events
        self.truncated = truncated
        self.failing = False

    async def latest_id(self, organization_id: int) -> int:
        return max((e.id or 0 for e in self.events), default=0)

    async def after(self, organization_id: int, after_id: int) -> AsyncIterator[Envelope]:
        if self.failing:
            raise ConnectionError("database is down")
        if self.truncated:
            raise ReplayTruncated
        for envelope in self.events:
            if envelope.organization_id == organization_id and (envelope.id or 0) > after_id:
                yield envelope


def event(
    event_id: int | None, type: str = "message.received", org: int = 1, **data: object
) -> Envelope:
    return Envelope.build(type, org, data, id=event_id)


def live(
    hub: Hub, socket: FakeSocket, org: int = 1, floor: int = 0, **filters: object
) -> Connection:
    connection = hub.connect(socket, org, **filters)  # type: ignore[arg-type]

    async def prelude() -> int:
        return floor

    connection.start(prelude)
    return connection


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


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


async def test_repeated_ids_are_dropped_and_late_ones_delivered() -> None:
    hub = Hub()
    socket = FakeSocket()
    live(hub, socket)
    await settle()
    for id in (1, 2, 3, 5, 4, 3, 5):
        hub.dispatch(event(id))
    hub.dispatch(event(None, "typing"))
    hub.dispatch(event(None, "typing"))
    await settle()
    # Two publishers can deliver 5 before 4: both arrive, each once; ephemeral ones always.
    assert socket.ids() == [1, 2, 3, 5, 4]
    assert socket.types().count("typing") == 2
    assert hub.counters.duplicates_dropped == 2


async def test_with_dense_ids_an_early_event_waits_for_the_one_before_it() -> None:
    hub = Hub(dense_ids=ListLog([]), reorder_wait=5)
    socket = FakeSocket()
    live(hub, socket)
    for event_id in (1, 3, 4, 2, 5):
        hub.dispatch(event(event_id))
    await settle()
    assert socket.ids() == [1, 2, 3, 4, 5]


async def test_with_dense_ids_a_lost_event_is_fetched_from_the_log() -> None:
    stored = [event(i) for i in range(1, 8)]
    hub = Hub(dense_ids=ListLog(stored), reorder_wait=0.01)
    socket = FakeSocket()
    live(hub, socket)
    # 3 and 4 never come through the broker (their publish failed).
    for envelope in (stored[0], stored[1], stored[4], stored[5]):
        hub.dispatch(envelope)
    await asyncio.sleep(0.1)
    await settle()
    assert socket.ids() == [1, 2, 3, 4, 5, 6]
    hub.dispatch(stored[3])  # arriving after all: a repeat, dropped
    hub.dispatch(stored[6])
    await settle()
    assert socket.ids() == [1, 2, 3, 4, 5, 6, 7]


class GatedLog(ListLog):
    """A log whose reads wait for `gate`: events keep arriving while a gap is filled."""

    def __init__(self, events: list[Envelope]) -> None:
        super().__init__(events)
        self.gate = asyncio.Event()

    async def after(self, organization_id: int, after_id: int) -> AsyncIterator[Envelope]:
        await self.gate.wait()
        async for envelope in super().after(organization_id, after_id):
            yield envelope


async def test_with_dense_ids_an_event_early_during_a_fill_waits_for_its_own_gap() -> None:
    stored = [event(i) for i in range(1, 6)]
    log = GatedLog(stored)
    hub = Hub(dense_ids=log, reorder_wait=0.01)
    socket = FakeSocket()
    live(hub, socket)
    await settle()
    hub.dispatch(stored[0])
    hub.dispatch(stored[2])  # 2 is late: the log is asked for it, up to 3
    await asyncio.sleep(0.05)
    hub.dispatch(stored[4])  # 4 is late too, and the fill under way was not asked for it
    log.gate.set()
    await settle()
    assert socket.ids() == [1, 2, 3]
    hub.dispatch(stored[3])
    await settle()
    assert socket.ids() == [1, 2, 3, 4, 5]


async def test_with_dense_ids_the_first_event_after_the_floor_is_the_one_due() -> None:
    hub = Hub(dense_ids=ListLog([]), reorder_wait=5)
    socket = FakeSocket()
    live(hub, socket, floor=10)
    await settle()
    # Two processes published 11 and 12; 12 came through first.
    hub.dispatch(event(12))
    hub.dispatch(event(11))
    await settle()
    assert socket.ids() == [11, 12]


async def test_events_at_or_below_the_replayed_floor_are_not_sent_again() -> None:
    hub = Hub()
    socket = FakeSocket()
    replay_done = asyncio.Event()
    connection = hub.connect(socket, 1)

    async def prelude() -> int:
        await replay_done.wait()
        return 10

    connection.start(prelude)
    # Published while the prelude replays: buffered in the queue.
    for id in (9, 10, 11):
        hub.dispatch(event(id))
    replay_done.set()
    await settle()
    hub.dispatch(event(12))
    await settle()
    assert socket.ids() == [11, 12]


async def test_a_connection_over_its_count_limit_is_evicted_without_slowing_others() -> None:
    hub = Hub(max_queue_messages=3, close_timeout=0.05)
    stuck, healthy = FakeSocket(stuck=True), FakeSocket()
    slow = live(hub, stuck)
    live(hub, healthy)
    await settle()
    for id in range(1, 11):
        hub.dispatch(event(id))
        # As the broker pump does: the writers get to run between events.
        await asyncio.sleep(0)
    await settle()
    assert slow.closing and slow.close_code == 4008
    assert hub.counters.evictions == 1
    assert healthy.ids() == list(range(1, 11))
    await slow.finish()
    # The close frame could not be written either: the socket was dropped.
    assert stuck.close_requested == 4008 and stuck.aborted
    assert hub.counters.aborted == 1
    assert hub.connection_count == 1


async def test_a_connection_over_its_byte_limit_is_evicted() -> None:
    hub = Hub(max_queue_messages=1000, max_queue_bytes=4096, close_timeout=0.05)
    stuck = FakeSocket(stuck=True)
    slow = live(hub, stuck)
    await settle()
    for id in range(1, 6):
        hub.dispatch(event(id, text="x" * 1000))
    assert slow.close_code == 4008
    await slow.finish()


async def test_a_live_connection_on_a_frame_transport_gets_the_shared_frame_directly() -> None:
    hub = Hub()
    sockets = [FrameSocket() for _ in range(3)]
    connections = [live(hub, socket, events=["message.received"]) for socket in sockets]
    await settle()
    envelope = event(1, conversation_id=4)
    hub.dispatch(envelope)
    hub.dispatch(event(2, "lead.created"))
    # Written during dispatch itself: no writer task is left to wake.
    assert all(socket.writes == [envelope.wire] for socket in sockets)
    assert all(socket.writes[0] is envelope.wire for socket in sockets)
    assert all(c._writer is None for c in connections)
    connections[0].send(event(None, "pong"))
    await asyncio.sleep(0)
    assert sockets[0].types() == ["message.received", "pong"]


async def test_a_frame_transport_gets_a_burst_in_two_writes() -> None:
    hub = Hub()
    sockets = [FrameSocket(), FrameSocket()]
    for socket in sockets:
        live(hub, socket)
    await settle()
    for id in (1, 2, 3, 4):
        hub.dispatch(event(id))
    # The first at once; the rest of this turn of the loop together at its end.
    assert all(socket.ids() == [1] for socket in sockets)
    await asyncio.sleep(0)
    assert all(len(socket.writes) == 2 and socket.ids() == [1, 2, 3, 4] for socket in sockets)
    hub.dispatch(event(5))
    assert all(len(socket.writes) == 3 and socket.ids() == [1, 2, 3, 4, 5] for socket in sockets)


async def test_frames_held_for_the_end_of_a_turn_stay_under_the_byte_limit() -> None:
    hub = Hub(max_queue_bytes=4096)
    socket = FrameSocket()
    live(hub, socket)
    await settle()
    for id in range(1, 11):
        hub.dispatch(event(id, text="x" * 1000))
    # Written as soon as more than the limit was held, not at the end of the turn.
    assert 2 < len(socket.writes) < 10
    assert all(len(write) <= 4096 + 1100 for write in socket.writes)
    await asyncio.sleep(0)
    assert socket.ids() == list(range(1, 11))


async def test_what_a_connection_was_handed_goes_out_before_its_close_frame() -> None:
    hub = Hub()
    socket = FrameSocket()
    connection = live(hub, socket)
    await settle()
    hub.dispatch(event(1))
    connection.send(event(None, "error"))
    connection.close(4400)
    assert socket.types() == ["message.received", "error"]
    await connection.finish()
    assert socket.close_requested == 4400


async def test_on_a_frame_transport_what_came_during_the_prelude_goes_first() -> None:
    hub = Hub()
    socket = FrameSocket()
    replay_done = asyncio.Event()
    connection = hub.connect(socket, 1)

    async def prelude() -> int:
        await socket.send_text(event(10).text)
        await replay_done.wait()
        return 10

    connection.start(prelude)
    await settle()
    for id in (9, 10, 11, 12):
        hub.dispatch(event(id))
    assert socket.ids() == [10]
    replay_done.set()
    await settle()
    hub.dispatch(event(13))
    await asyncio.sleep(0)
    assert socket.ids() == [10, 11, 12, 13]


async def test_a_frame_transport_holding_too_many_unsent_bytes_is_evicted() -> None:
    hub = Hub(max_queue_bytes=4096, close_timeout=0.05)
    stuck, healthy = FrameSocket(stuck=True), FrameSocket()
    slow = live(hub, stuck)
    live(hub, healthy)
    await settle()
    for id in range(1, 11):
        hub.dispatch(event(id, text="x" * 1000))
        await asyncio.sleep(0)
    assert slow.close_code == 4008 and hub.counters.evictions == 1
    assert 0 < len(stuck.writes) < 10
    assert healthy.ids() == list(range(1, 11))
    await slow.finish()
    assert stuck.close_requested == 4008 and stuck.aborted


async def test_a_frame_transport_whose_peer_left_is_no_longer_dispatched_to() -> None:
    hub = Hub()
    gone, other = FrameSocket(), FrameSocket()
    live(hub, gone)
    live(hub, other)
    await settle()
    gone.gone = True
    hub.dispatch(event(1))
    await asyncio.sleep(0)
    hub.dispatch(event(2))
    await asyncio.sleep(0)
    assert hub.connection_count == 1
    assert other.ids() == [1, 2]


async def test_catching_up_fills_the_gap_exactly_once() -> None:
    hub = Hub()
    sockets = [FakeSocket(), FakeSocket()]
    for socket in sockets:
        live(hub, socket)
    await settle()
    stored = [event(id) for id in range(1, 8)] + [event(8, org=2)]
    hub.dispatch(stored[0])
    hub.dispatch(stored[1])
    # 3..5 were lost while the broker was down; 6 arrives live after it came back.
    hub.dispatch(stored[5])
    assert await hub.catch_up(ListLog(stored)) == 7
    hub.dispatch(stored[6])
    await settle()
    for socket in sockets:
        assert socket.ids() == [1, 2, 6, 3, 4, 5, 7]


async def test_catching_up_past_retention_tells_the_clients() -> None:
    hub = Hub()
    socket = FakeSocket()
    live(hub, socket)
    await settle()
    await hub.catch_up(ListLog([], truncated=True))
    await settle()
    assert socket.types() == ["replay.truncated"]


async def test_a_failed_catch_up_makes_clients_resume_on_their_own() -> None:
    hub = Hub()
    socket = FakeSocket()
    connection = live(hub, socket)
    await settle()
    log = ListLog([])
    log.failing = True
    await hub.catch_up(log)
    assert connection.close_code == 1013
    await connection.finish()
    assert socket.close_requested == 1013


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


async def test_a_peer_that_left_is_unregistered_and_its_writer_stopped() -> None:
    hub = Hub(close_timeout=0.01)
    socket = FakeSocket(stuck=True)
    connection = live(hub, socket)
    await settle()
    hub.dispatch(event(1))
    await connection.finish()
    assert hub.connection_count == 0
    assert socket.close_requested is None
    hub.dispatch(event(2))
    await asyncio.sleep(0.05)
    # Whatever the server does with the transport, it is dropped after the timeout.
    assert socket.aborted


# The same behaviour on a real server, with real sockets.


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


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
        await eventually(lambda: all(c.floor is not None for c in app.hub.connections(1)))
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
