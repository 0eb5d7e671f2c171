"""Event data that cannot be a frame is found when it is encoded, once, before anything
is stored; a stored event that still cannot be sent is an EVENT_UNREADABLE error frame in
its place, in order, and the stream goes on — in a replay, a catch-up and a gap fill."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from realtime import DataNotEncodable, Envelope, Hub, encode_data
from realtime.protocol import event_unreadable
from tests.realtime.fakes import FakeSocket, ListLog, event, live, settle
from tests.realtime.rt_harness import (
    RealtimeApp,
    ServerThread,
    client,
    nothing_more,
    receive,
    receive_events,
)

Served = tuple[RealtimeApp, ServerThread]


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def unreadable(event_id: int, event_type: str) -> dict[str, Any]:
    return {
        "type": "error",
        "code": "EVENT_UNREADABLE",
        "message": f"event {event_id} ({event_type}) could not be sent; reload through REST",
        "event_id": event_id,
        "event_type": event_type,
    }


@pytest.mark.parametrize("data", [nested(300), {"x": {1: "a key that is no string"}},
                                  {"x": object()}])
def test_data_that_cannot_be_a_frame_is_refused_when_encoded(data: dict[str, Any]) -> None:
    with pytest.raises(DataNotEncodable):
        encode_data(data)
    with pytest.raises(DataNotEncodable):
        Envelope.build("lead.created", 1, data, id=1)


def test_whatever_encodes_can_be_sent_and_at_exactly_the_same_depth() -> None:
    # The data of a frame sits a level below its envelope: checked on its own, data one
    # level short of the encoder's limit would pass and then fail inside every frame.
    limit = max(n for n in range(200, 300) if _encodes(nested(n)))
    for levels in (limit - 1, limit):
        data = nested(levels)
        frame = Envelope.build("lead.created", 1, data, id=1).frame
        assert orjson.loads(frame)["data"] == data
    with pytest.raises(DataNotEncodable):
        Envelope.build("lead.created", 1, nested(limit + 1), id=1)


def _encodes(data: dict[str, Any]) -> bool:
    try:
        encode_data(data)
    except DataNotEncodable:
        return False
    return True


def test_data_encoded_ahead_makes_the_same_frame() -> None:
    moment = datetime(2026, 1, 15, 16, 35, tzinfo=UTC)
    data = {"conversation_id": 9, "text": "hé\n", "at": moment, "list": [1, 2.5, None]}
    built = Envelope.build("message.received", 1, data, id=7, timestamp=moment)
    ahead = Envelope.build(
        "message.received", 1, data, id=7, timestamp=moment, encoded=encode_data(data)
    )
    assert ahead == built
    assert orjson.loads(ahead.frame)["data"]["at"] == "2026-01-15T16:35:00Z"


def test_the_stand_in_is_an_error_frame_routed_as_its_event() -> None:
    stand_in = event_unreadable(12, "contact.created", 3)
    assert orjson.loads(stand_in.frame) == unreadable(12, "contact.created")
    assert stand_in.text == stand_in.frame.decode()
    assert (stand_in.id, stand_in.type, stand_in.organization_id) == (12, "contact.created", 3)
    assert not stand_in.ephemeral


async def test_a_gap_fill_hands_out_the_stand_in_in_order_and_goes_on() -> None:
    stored = [event(1), event_unreadable(2, "message.received", 1), event(3), event(4)]
    hub = Hub(fill_gaps_from=ListLog(stored), reorder_wait=0.01)
    socket, narrowed = FakeSocket(), FakeSocket()
    live(hub, socket)
    live(hub, narrowed, events=["conversation.updated", "message.received"])
    other = FakeSocket()
    live(hub, other, events=["lead.created"])
    hub.dispatch(stored[0])
    hub.dispatch(stored[2])  # 2 was never published
    await asyncio.sleep(0.1)
    hub.dispatch(stored[3])
    await settle()
    for sock in (socket, narrowed):
        assert [orjson.loads(text).get("id") for text in sock.sent] == [1, None, 3, 4]
        assert orjson.loads(sock.sent[1]) == unreadable(2, "message.received")
    assert other.sent == []


async def test_a_catch_up_hands_out_the_stand_in_once() -> None:
    stored = [event(1), event_unreadable(2, "message.received", 1), event(3)]
    hub = Hub()
    socket = FakeSocket()
    live(hub, socket)
    await settle()
    for _ in range(2):
        await hub.catch_up(ListLog(stored))
    await settle()
    assert socket.types() == ["message.received", "error", "message.received"]


async def test_a_replay_sends_the_stand_in_and_the_events_after_it(served: Served) -> None:
    app, server = served
    org = 4242
    first = await server.call(app.produce(org, 2))
    bad = app.log.events[org][-1].id
    assert bad is not None
    app.log.events[org][-1] = event_unreadable(bad, "message.received", org)
    rest = await server.call(app.produce(org, 2))
    for query in ("", "&events=message.received"):
        token = app.token(org, 1)
        async with await client(server, token, f"last_event_id={first[0] - 1}{query}") as ws:
            assert (await receive(ws))["type"] == "session.ready"
            frames = await receive_events(ws, rest[-1])
            assert [f.get("id") for f in frames] == [first[0], None, *rest]
            assert frames[1] == unreadable(bad, "message.received")
            await nothing_more(ws)
            if query:
                # Still open, and live.
                live_ids = await server.call(app.produce(org, 1))
                assert [f.get("id") for f in await receive_events(ws, live_ids[-1])] == live_ids
    # A client that asked for other types only is not told about it.
    async with await client(server, app.token(org, 1), "last_event_id=0&events=typing") as ws:
        assert (await receive(ws))["type"] == "session.ready"
        await nothing_more(ws)
