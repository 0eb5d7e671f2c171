from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime import MemoryPresence, origin_of, same_origin, same_origin_as_request
from tests.realtime.rt_harness import (
    RealtimeApp,
    ServerThread,
    client,
    ids_of,
    nothing_more,
    receive,
    receive_events,
)

Served = tuple[RealtimeApp, ServerThread]

_organizations = itertools.count(100)


def new_org() -> int:
    return next(_organizations)


async def closed_with(ws: Any) -> int | None:
    """Read until the server closes; return its close code."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code  # type: ignore[no-any-return]


async def test_session_ready_then_every_event_of_the_organization(served: Served) -> None:
    app, server = served
    org = new_org()
    before = await server.call(app.produce(org, 3))
    async with await client(server, app.token(org, user_id=7)) as ws:
        ready = await receive(ws)
        assert ready.pop("connection_id")
        assert ready == {
            "type": "session.ready",
            "user": {"id": 7, "name": "user 7"},
            "organization_id": org,
            "last_event_id": before[-1],
        }
        ids = await server.call(app.produce(org, 3, data={"conversation_id": 1}))
        await server.call(app.produce(new_org(), 2))
        frames = await receive_events(ws, ids[-1])
        assert ids_of(frames) == ids
        assert set(frames[0]) == {"id", "type", "organization_id", "timestamp", "data"}
        assert frames[0]["organization_id"] == org
        await nothing_more(ws)


async def test_joining_a_live_stream_starts_right_after_what_the_others_were_sent() -> None:
    # Filling gaps from the log, the hub knows the last event it handed out: no need to ask.
    app = RealtimeApp(fill_gaps=True)
    server = ServerThread(app.app).start()
    try:
        first = await client(server, app.token(1, user_id=1))
        assert (await receive(first))["last_event_id"] == 0
        before = await server.call(app.produce(1, 5))
        await receive_events(first, before[-1])
        asked = app.log.latest_asked
        second = await client(server, app.token(1, user_id=2))
        assert (await receive(second))["last_event_id"] == before[-1]
        assert app.log.latest_asked == asked
        after = await server.call(app.produce(1, 3))
        for ws in (first, second):
            assert ids_of(await receive_events(ws, after[-1])) == after
            await nothing_more(ws)
            await ws.close()
    finally:
        server.stop()


def _failed(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


@pytest.mark.parametrize(
    ("token", "headers", "body"),
    [
        (None, {}, _failed("AUTHENTICATION_FAILED", "Authentication required", reason="missing")),
        # The application's own words, raised from its authenticate callable.
        ("forged", {}, _failed("AUTHENTICATION_FAILED", "Unknown token", reason="invalid")),
        ("expired", {}, _failed("AUTHENTICATION_FAILED", "Credentials expired", reason="expired")),
        (
            "valid",
            {"Origin": "https://evil.example"},
            _failed("AUTHORIZATION_FAILED", "Origin not allowed", origin="https://evil.example"),
        ),
    ],
    ids=["missing", "unknown", "expired", "foreign-origin"],
)
async def test_refused_handshakes_get_403_the_error_envelope_and_no_event(
    served: Served, token: str | None, headers: dict[str, str], body: dict[str, Any]
) -> None:
    app, server = served
    org = new_org()
    tokens = {
        "valid": app.token(org, user_id=1),
        "expired": app.token(org, user_id=1, expires_at=datetime.now(UTC) - timedelta(seconds=1)),
    }
    connections = app.hub.counters.connections_opened
    with pytest.raises(InvalidStatus) as refused:
        await client(server, tokens.get(token or "", token), additional_headers=headers)
    assert refused.value.response.status_code == 403
    assert refused.value.response.headers["content-type"] == "application/json"
    assert orjson.loads(refused.value.response.body or b"") == body
    # Refused before registration: not one event could have been queued for it.
    assert app.hub.counters.connections_opened == connections


@pytest.mark.parametrize(
    ("query", "field"),
    [("last_event_id=abc", "last_event_id"), ("events=" + "x" * 65, "events")],
)
async def test_a_bad_query_parameter_is_a_400_naming_the_field(
    served: Served, query: str, field: str
) -> None:
    app, server = served
    with pytest.raises(InvalidStatus) as refused:
        await client(server, app.token(new_org(), 1), query)
    assert refused.value.response.status_code == 400
    error = orjson.loads(refused.value.response.body or b"")["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"].startswith(f"{field}: ")
    [problem] = error["details"]["fields"]
    assert problem["field"] == field and problem["message"]


async def test_an_allowed_origin_connects(served: Served) -> None:
    app, server = served
    token = app.token(new_org(), 1)
    async with await client(server, token, origin="https://app.example") as ws:
        assert (await receive(ws))["type"] == "session.ready"


def test_origins_are_compared_by_scheme_host_and_port() -> None:
    assert origin_of("https://Inbox.Example") == ("https", "inbox.example", 443)
    assert origin_of("wss://inbox.example:8443/ws") == ("https", "inbox.example", 8443)
    assert origin_of("null") is None and origin_of("https://inbox.example:99999") is None
    # The default check: the origin the handshake was addressed to, all three parts.
    assert same_origin_as_request("https://inbox.example:8443", "https://inbox.example:8443")
    assert same_origin_as_request("https://inbox.example", "https://inbox.example:443")
    assert not same_origin_as_request("http://inbox.example", "https://inbox.example")
    assert not same_origin_as_request("https://inbox.example:8443", "https://inbox.example")
    assert not same_origin_as_request("https://evil.example", "https://inbox.example")
    assert not same_origin("https://app.example.com.evil", ["https://app.example.com"])
    assert same_origin("https://app.example.com", ["http://x.example", "https://app.example.com/"])


@pytest.mark.parametrize("name", ["tok%65n", "%74oken", "to+ken"])
async def test_a_parameter_name_spelled_with_escapes_is_refused(
    served: Served, name: str
) -> None:
    app, server = served
    token = app.token(new_org(), 1)
    with pytest.raises(InvalidStatus) as refused:
        await client(server, None, f"{name}={token}")
    assert refused.value.response.status_code == 400
    error = orjson.loads(refused.value.response.body or b"")["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["fields"][0]["field"] == name
    # Under its exact name the same token connects.
    async with await client(server, None, f"token={token}") as ws:
        assert (await receive(ws))["type"] == "session.ready"


async def test_the_events_query_parameter_narrows_the_stream(served: Served) -> None:
    app, server = served
    org = new_org()
    query = "events=lead.created,message.sent"
    async with await client(server, app.token(org, 1), query) as ws:
        await receive(ws)
        await server.call(app.produce(org, 2, type="message.received"))
        wanted = await server.call(app.produce(org, 2, type="lead.created"))
        await server.call(app.produce(org, 2, type="message.received"))
        wanted += await server.call(app.produce(org, 1, type="message.sent"))
        assert ids_of(await receive_events(ws, wanted[-1])) == wanted
        await nothing_more(ws)


async def test_subscribe_and_unsubscribe_frames(served: Served) -> None:
    app, server = served
    org = new_org()
    async with await client(server, app.token(org, 1)) as ws:
        await receive(ws)
        await ws.send('{"type": "subscribe", "events": ["message.received"]}')
        await ws.send('{"type": "subscribe", "conversation_ids": [7]}')
        assert await receive(ws) == {
            "type": "subscription",
            "events": ["message.received"],
            "conversation_ids": None,
        }
        assert (await receive(ws))["conversation_ids"] == [7]
        await server.call(app.produce(org, 1, type="lead.created"))
        await server.call(app.produce(org, 1, data={"conversation_id": 8}))
        wanted = await server.call(app.produce(org, 1, data={"conversation_id": 7}))
        assert ids_of(await receive_events(ws, wanted[-1])) == wanted

        await ws.send('{"type": "unsubscribe", "conversation_ids": [7]}')
        assert (await receive(ws))["conversation_ids"] is None
        await ws.send('{"type": "unsubscribe"}')
        assert await receive(ws) == {
            "type": "subscription",
            "events": None,
            "conversation_ids": None,
        }
        everything = await server.call(app.produce(org, 1, type="lead.created"))
        assert ids_of(await receive_events(ws, everything[-1])) == everything


KNOWN = ("lead.created", "message.received", "message.sent")


@pytest.fixture(scope="module")
def knowing() -> Iterator[Served]:
    """An app that tells the endpoint which event types exist."""
    app = RealtimeApp(event_types=KNOWN)
    server = ServerThread(app.app).start()
    try:
        yield app, server
    finally:
        server.stop()


def _names_unknown_and_lists_known(frame: dict[str, Any], *unknown: str) -> None:
    assert frame["type"] == "error" and frame["code"] == "UNKNOWN_EVENT_TYPE", frame
    assert set(frame) == {"type", "code", "message"}
    for name in unknown:
        assert repr(name) in frame["message"], frame
    assert frame["message"].endswith("the event types are " + ", ".join(KNOWN)), frame


async def test_unknown_names_in_the_events_parameter_are_reported_and_left_out(
    knowing: Served,
) -> None:
    app, server = knowing
    org = new_org()
    query = "events=bogus,lead.created,message.recieved"
    async with await client(server, app.token(org, 1), query) as ws:
        assert (await receive(ws))["type"] == "session.ready"
        _names_unknown_and_lists_known(await receive(ws), "bogus", "message.recieved")
        # The correctly named type still narrows the stream; the connection stays open.
        await server.call(app.produce(org, 2, type="message.received"))
        wanted = await server.call(app.produce(org, 1, type="lead.created"))
        assert ids_of(await receive_events(ws, wanted[-1])) == wanted
        await nothing_more(ws)


async def test_only_unknown_names_in_the_events_parameter_narrow_nothing(
    knowing: Served,
) -> None:
    app, server = knowing
    org = new_org()
    earlier = await server.call(app.produce(org, 2, type="message.sent"))
    async with await client(server, app.token(org, 1), "events=bogus&last_event_id=0") as ws:
        assert (await receive(ws))["type"] == "session.ready"
        # Ahead of the replay, where a client looks first.
        _names_unknown_and_lists_known(await receive(ws), "bogus")
        assert ids_of(await receive_events(ws, earlier[-1])) == earlier
        later = await server.call(app.produce(org, 1, type="lead.created"))
        assert ids_of(await receive_events(ws, later[-1])) == later


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
async def test_unknown_event_types_in_a_frame_are_refused_and_change_nothing(
    knowing: Served, kind: str
) -> None:
    app, server = knowing
    org = new_org()
    async with await client(server, app.token(org, 1), "events=lead.created") as ws:
        await receive(ws)
        # A known name beside the unknown one, which applied alone would change the stream.
        known = "message.sent" if kind == "subscribe" else "lead.created"
        frame = {"type": kind, "events": ["bogus.event", known]}
        await ws.send(orjson.dumps(frame).decode())
        _names_unknown_and_lists_known(await receive(ws), "bogus.event")
        await nothing_more(ws)
        # Not half applied: still lead.created only.
        await server.call(app.produce(org, 1, type="message.sent"))
        wanted = await server.call(app.produce(org, 1, type="lead.created"))
        assert ids_of(await receive_events(ws, wanted[-1])) == wanted
        await ws.send('{"type": "subscribe", "events": ["message.sent"]}')
        assert (await receive(ws))["events"] == ["lead.created", "message.sent"]


async def test_without_a_list_of_event_types_any_name_narrows(served: Served) -> None:
    app, server = served
    org = new_org()
    async with await client(server, app.token(org, 1), "events=custom.thing") as ws:
        await receive(ws)
        await ws.send('{"type": "subscribe", "events": ["other.thing"]}')
        assert (await receive(ws))["events"] == ["custom.thing", "other.thing"]
        wanted = await server.call(app.produce(org, 1, type="custom.thing"))
        assert ids_of(await receive_events(ws, wanted[-1])) == wanted


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "INVALID_JSON"),
        ("[1, 2]", "INVALID_FRAME"),
        ("{}", "INVALID_FRAME"),
        ('{"type": "dance"}', "UNKNOWN_TYPE"),
        ('{"type": "typing", "conversation_id": "7"}', "INVALID_FRAME"),
        ('{"type": "subscribe", "events": "lead.created"}', "INVALID_FRAME"),
        ('{"type": "subscribe", "conversation_ids": [true]}', "INVALID_FRAME"),
        (b"\x00\x01", "INVALID_FRAME"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_connection_stays(
    served: Served, frame: str | bytes, code: str
) -> None:
    app, server = served
    org = new_org()
    async with await client(server, app.token(org, 1)) as ws:
        await receive(ws)
        await ws.send(frame)
        answer = await receive(ws)
        assert answer["type"] == "error" and answer["code"] == code and answer["message"]
        await nothing_more(ws)
        ids = await server.call(app.produce(org, 1))
        assert ids_of(await receive_events(ws, ids[-1])) == ids


async def test_a_frame_over_64_kib_closes_with_1009(served: Served) -> None:
    app, server = served
    async with await client(server, app.token(new_org(), 1)) as ws:
        await receive(ws)
        await ws.send('{"type": "ping", "pad": "' + "x" * (64 * 1024) + '"}')
        assert await closed_with(ws) == 1009


async def test_a_token_that_expires_while_connected_closes_with_4401(served: Served) -> None:
    app, server = served
    org = new_org()
    token = app.token(org, 1, expires_at=datetime.now(UTC) + timedelta(seconds=0.5))
    async with await client(server, token) as ws:
        assert (await receive(ws))["type"] == "session.ready"
        assert await closed_with(ws) == 4401


async def test_typing_reaches_the_others_of_the_organization_only(served: Served) -> None:
    app, server = served
    org = new_org()
    typist = await client(server, app.token(org, user_id=1))
    colleague = await client(server, app.token(org, user_id=2))
    stranger = await client(server, app.token(new_org(), user_id=3))
    try:
        typist_id = (await receive(typist))["connection_id"]
        await receive(colleague)
        await receive(stranger)
        await typist.send('{"type": "typing", "conversation_id": 5}')
        typing = await receive(colleague)
        assert "id" not in typing
        assert typing["type"] == "typing"
        assert typing["data"] == {"conversation_id": 5, "user_id": 1, "connection_id": typist_id}
        # Had it been queued for them, it would come before the pong.
        await nothing_more(typist)
        await nothing_more(stranger)
    finally:
        for ws in (typist, colleague, stranger):
            await ws.close()


async def test_resume_is_exact_while_events_are_being_written(served: Served) -> None:
    app, server = served
    org = new_org()
    token = app.token(org, 1)
    await server.call(app.produce(org, 20))
    async with await client(server, token) as ws:
        await receive(ws)
        seen = await server.call(app.produce(org, 30))
        assert ids_of(await receive_events(ws, seen[-1])) == seen
    last_seen = seen[-1]

    await server.call(app.produce(org, 500))
    # More keep coming while the client reconnects and its replay runs.
    producing = asyncio.ensure_future(server.call(app.produce(org, 300, pause=0.0005)))
    async with await client(server, token, f"last_event_id={last_seen}") as ws:
        ready = await receive(ws)
        assert ready["last_event_id"] == last_seen
        await producing
        missed = [id for id in app.log.ids(org) if id > last_seen]
        assert len(missed) == 800
        assert ids_of(await receive_events(ws, missed[-1])) == missed
        live = await server.call(app.produce(org, 5))
        assert ids_of(await receive_events(ws, live[-1])) == live
        await nothing_more(ws)


async def test_reconnecting_again_and_again_during_a_stream_leaves_no_gap(
    served: Served,
) -> None:
    app, server = served
    org = new_org()
    token = app.token(org, 1)
    producing = asyncio.ensure_future(server.call(app.produce(org, 2000, pause=0.0002)))
    received: list[int] = []
    last = 0
    for _ in range(20):
        async with await client(server, token, f"last_event_id={last}") as ws:
            await receive(ws)
            for _ in range(40):
                frame = await receive(ws)
                received.append(frame["id"])
                last = frame["id"]
    await producing
    expected = app.log.ids(org)
    async with await client(server, token, f"last_event_id={last}") as ws:
        await receive(ws)
        received += ids_of(await receive_events(ws, expected[-1]))
    assert received == expected


async def test_resuming_past_retention_says_replay_truncated(served: Served) -> None:
    app, server = served
    org = new_org()
    old = await server.call(app.produce(org, 10))
    app.log.oldest_kept[org] = old[5]
    async with await client(server, app.token(org, 1), f"last_event_id={old[1]}") as ws:
        assert (await receive(ws))["type"] == "session.ready"
        assert await receive(ws) == {"type": "replay.truncated"}
        live = await server.call(app.produce(org, 2))
        assert ids_of(await receive_events(ws, live[-1])) == live


async def test_closing_the_hub_and_stopping_the_server_send_1012() -> None:
    app = RealtimeApp()
    server = ServerThread(app.app).start()
    try:
        first = await client(server, app.token(1, 1))
        await receive(first)
        await server.call(app.hub.close_all())
        assert await closed_with(first) == 1012
        second = await client(server, app.token(1, 1))
        await receive(second)
    finally:
        server.stop()
    assert await closed_with(second) == 1012


async def test_presence_reports_the_first_and_last_connection_of_a_user() -> None:
    changes: list[tuple[int, int, bool]] = []

    async def record(organization_id: int, user_id: int, online: bool) -> None:
        changes.append((organization_id, user_id, online))

    presence = MemoryPresence(record)
    app = RealtimeApp(presence=presence)
    server = ServerThread(app.app).start()
    try:
        first = await client(server, app.token(1, user_id=7))
        second = await client(server, app.token(1, user_id=7))
        api_key = await client(server, app.token(1))
        for ws in (first, second, api_key):
            await receive(ws)
        assert changes == [(1, 7, True)]
        assert await server.call(presence.online(1)) == {7}
        await first.close()
        await api_key.close()
        await nothing_more(second)
        assert changes == [(1, 7, True)]
        await second.close()
        async with asyncio.timeout(10):
            while len(changes) < 2:
                await asyncio.sleep(0.01)
        assert changes == [(1, 7, True), (1, 7, False)]
    finally:
        server.stop()
