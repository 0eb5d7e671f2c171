"""A connection's states, its bounded queue, its two writers and eviction."""

from __future__ import annotations

import asyncio

import pytest

from realtime import Hub
from realtime.hub import ConnectionStateError, State
from tests.realtime.fakes import (
    BrokenFrameSocket,
    FakeSocket,
    FrameSocket,
    event,
    live,
    settle,
)


async def test_events_the_prelude_sent_are_not_sent_again() -> None:
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
        # As the broker pump does: the queue tasks get to run between events.
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
    # Written during dispatch itself: no task is left to wake.
    assert all(socket.writes == [envelope.wire] for socket in sockets)
    assert all(socket.writes[0] is envelope.wire for socket in sockets)
    assert all(c.state is State.DIRECT for c in connections)
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


async def test_a_peer_that_left_is_unregistered_and_its_queue_task_stopped() -> None:
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


async def test_a_connection_goes_from_its_prelude_to_live_to_closed() -> None:
    hub = Hub(close_timeout=0.05)
    queued, direct = FakeSocket(), FrameSocket()
    prelude_done = asyncio.Event()
    connections = [hub.connect(queued, 1), hub.connect(direct, 1)]

    async def prelude() -> int:
        await prelude_done.wait()
        return 0

    for connection in connections:
        connection.start(prelude)
    await settle()
    assert [c.state for c in connections] == [State.STARTING] * 2
    prelude_done.set()
    await settle()
    assert [c.state for c in connections] == [State.QUEUED, State.DIRECT]
    connections[0].close(4401)
    assert connections[0].state is State.CLOSING and connections[0].close_code == 4401
    for connection in connections:
        await connection.finish()
    # The second one's peer left: closed, with no code of the server's.
    assert [c.state for c in connections] == [State.CLOSED] * 2
    assert connections[1].close_code is None
    assert queued.close_requested == 4401 and direct.close_requested is None


async def test_a_connection_refuses_what_its_state_does_not_allow() -> None:
    hub = Hub(close_timeout=0.05)
    connection = live(hub, FakeSocket())
    await settle()
    with pytest.raises(ConnectionStateError, match="cannot start in state queued"):
        connection.start(lambda: asyncio.sleep(0, 0))
    with pytest.raises(ConnectionStateError, match="cannot send_now in state queued"):
        await connection.send_now(event(None, "pong"))
    await connection.finish()
    with pytest.raises(ConnectionStateError, match="cannot finish in state closed"):
        await connection.finish()


@pytest.mark.parametrize("when", ["at once", "at the end of the turn"])
async def test_an_unexpected_write_error_closes_that_socket_and_the_others_get_the_event(
    when: str,
) -> None:
    hub = Hub(close_timeout=0.05)
    first, broken, last = FrameSocket(), BrokenFrameSocket(), FrameSocket()
    connections = [live(hub, socket) for socket in (first, broken, last)]
    await settle()
    hub.dispatch(event(1))
    await asyncio.sleep(0)
    if when == "at once":
        broken.broken = True
        hub.dispatch(event(2))
    else:
        hub.dispatch(event(2))
        broken.broken = True
        # Held back for the end of this turn, when writing it fails.
        hub.dispatch(event(3))
        await asyncio.sleep(0)
        hub.dispatch(event(4))
    await asyncio.sleep(0)
    hub.dispatch(event(5))
    await asyncio.sleep(0)
    expected = [1, 2, 5] if when == "at once" else [1, 2, 3, 4, 5]
    assert first.ids() == expected and last.ids() == expected
    assert connections[1].close_code == 1011
    assert hub.connections(1) == (connections[0], connections[2])
    await connections[1].finish()
    # The close frame goes through the server's own path, which still works.
    assert broken.close_requested == 1011


async def test_an_unexpected_send_error_closes_that_socket_alone() -> None:
    class BrokenSocket(FakeSocket):
        async def send_text(self, text: str) -> None:
            raise ValueError("not a frame the server can send")

    hub = Hub(close_timeout=0.05)
    broken, healthy = BrokenSocket(), FakeSocket()
    connections = [live(hub, broken), live(hub, healthy)]
    await settle()
    hub.dispatch(event(1))
    hub.dispatch(event(2))
    await settle()
    assert healthy.ids() == [1, 2]
    assert connections[0].close_code == 1011
    await connections[0].finish()
    assert broken.close_requested == 1011
