"""Once each and in order: repeats, early and lost events, where connections start, and
catching up after the broker was away."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime import Hub
from tests.realtime.fakes import FakeSocket, FrameSocket, GatedLog, ListLog, event, live, settle


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


async def test_with_a_log_an_early_event_waits_for_the_one_before_it() -> None:
    hub = Hub(fill_gaps_from=ListLog([]), reorder_wait=5)
    socket = FakeSocket()
    live(hub, socket)
    for event_id in (1, 3, 4, 2, 5):
        hub.dispatch(event(event_id))
    await settle()
    assert socket.ids() == [1, 2, 3, 4, 5]


async def test_with_a_log_a_lost_event_is_read_from_it() -> None:
    stored = [event(i) for i in range(1, 8)]
    hub = Hub(fill_gaps_from=ListLog(stored), reorder_wait=0.01)
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


async def test_with_a_log_an_event_early_during_a_fill_waits_for_its_own_gap() -> None:
    stored = [event(i) for i in range(1, 6)]
    log = GatedLog(stored)
    hub = Hub(fill_gaps_from=log, reorder_wait=0.01)
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


async def test_with_a_log_the_first_event_after_where_connections_start_is_due() -> None:
    hub = Hub(fill_gaps_from=ListLog([]), reorder_wait=5)
    socket = FakeSocket()
    live(hub, socket, live_after=10)
    await settle()
    # Two processes published 11 and 12; 12 came through first.
    hub.dispatch(event(12))
    hub.dispatch(event(11))
    await settle()
    assert socket.ids() == [11, 12]


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


# What each client receives, whatever the broker does: a property over many runs.


@dataclass
class Run:
    """Stored events 1..stored; what the broker hands the hub, in this order, with the
    event loop's turns, new connections and catch-ups in between."""

    stored: int
    # live_after of the connections there from the start, and whether each takes frames.
    clients: list[tuple[int, bool]]
    steps: list[tuple[str, int]] = field(default_factory=list)
    window: int = 256
    max_held: int = 4096


@st.composite
def runs(draw: st.DrawFn, *, small_window: bool = True) -> Run:
    stored = draw(st.integers(1, 30))
    clients = draw(
        st.lists(st.tuples(st.integers(0, stored), st.booleans()), min_size=1, max_size=3)
    )
    # Each event comes through the broker never, once or twice, in any order.
    arrivals = [id for id in range(1, stored + 1) for _ in range(draw(st.integers(0, 2)))]
    run = Run(stored, clients)
    for id in draw(st.permutations(arrivals)):
        run.steps.append(("arrive", id))
        between = st.sampled_from(["turn", "turn", "join", "catch_up"])
        run.steps += [(step, draw(st.booleans())) for step in draw(st.lists(between, max_size=2))]
    if small_window:
        run.window = draw(st.sampled_from([1, 4, 256]))
        run.max_held = draw(st.sampled_from([1, 3, 4096]))
    return run


async def play(run: Run, *, fill_gaps: bool) -> tuple[list[FakeSocket], list[int], int]:
    """Play the run; answer every client's socket, where each one's live stream starts,
    and the last id a client is to get."""
    log = ListLog([event(id) for id in range(1, run.stored + 1)], pause=True)
    hub = Hub(
        fill_gaps_from=log if fill_gaps else None,
        reorder_wait=0,
        dedupe_window=run.window,
        max_held=run.max_held,
    )
    sockets: list[FakeSocket] = []
    starts: list[int] = []
    for live_after, frames in run.clients:
        sockets.append(FrameSocket() if frames else FakeSocket())
        starts.append(live_after)
        live(hub, sockets[-1], live_after=live_after)
    await settle()
    last = 0
    for step, value in run.steps:
        if step == "arrive":
            hub.dispatch(log.events[value - 1])
            last = max(last, value)
        elif step == "turn":
            await asyncio.sleep(0)
        elif step == "catch_up":
            await hub.catch_up(log)
            last = run.stored
        else:
            # Where the endpoint's prelude starts a connection that asks for no replay.
            socket = FrameSocket() if value else FakeSocket()
            connection = hub.connect(socket, 1)
            index = len(sockets)
            sockets.append(socket)
            starts.append(-1)

            async def prelude(index: int = index) -> int:
                start = hub.last_in_order(1)
                if start is None:
                    start = await log.latest_id(1)
                starts[index] = start
                return start

            connection.start(prelude)
    for _ in range(500):
        await asyncio.sleep(0)
    return sockets, starts, last


@settings(max_examples=300, deadline=None)
@given(runs())
def test_with_a_log_each_client_gets_each_event_once_and_in_order(run: Run) -> None:
    sockets, starts, last = asyncio.run(play(run, fill_gaps=True))
    for socket, start in zip(sockets, starts, strict=True):
        # Every event after where it started, at least up to the newest the hub heard of:
        # the ones that never came, or came late, read from the log (which a fill may read
        # a little further than it had to).
        ids = socket.ids()
        assert ids == list(range(start + 1, start + 1 + len(ids)))
        assert start + len(ids) >= last


@settings(max_examples=300, deadline=None)
@given(runs(small_window=False))
def test_without_a_log_each_client_gets_each_event_once(run: Run) -> None:
    sockets, starts, last = asyncio.run(play(run, fill_gaps=False))
    arrived = {value for step, value in run.steps if step == "arrive"}
    caught_up = any(step == "catch_up" for step, _ in run.steps)
    for socket, start in zip(sockets, starts, strict=True):
        ids = socket.ids()
        assert len(ids) == len(set(ids))
        expected = set(range(start + 1, last + 1)) if caught_up else arrived
        assert set(ids) == {id for id in expected if id > start}
