"""The one door to uvicorn's internals: the versions it was built for, the probe that
decides on direct frames, the fallback to ASGI `send`, and a failing transport."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from realtime.transport import BUILT_FOR, DirectFrames, VersionRange, parse_version, probe
from tests.realtime.fakes import eventually
from tests.realtime.rt_harness import (
    RealtimeApp,
    ServerThread,
    client,
    ids_of,
    nothing_more,
    receive,
    receive_events,
)


def test_the_installed_uvicorn_is_a_version_the_direct_path_was_built_for() -> None:
    version = parse_version(uvicorn.__version__)
    assert any(version in built for built in BUILT_FOR), (
        f"uvicorn {uvicorn.__version__} is not among the versions realtime/transport.py "
        f"reads the private attributes of ({', '.join(map(str, BUILT_FOR))}): run this "
        "module's tests against it, check what they read, then move BUILT_FOR"
    )


def test_versions_are_compared_by_their_numbers() -> None:
    built_for = VersionRange((0, 35), (0, 56))
    assert parse_version("0.55.0") in built_for and parse_version("0.35") in built_for
    assert parse_version("0.56.0rc1") not in built_for
    assert parse_version("0.34.3") not in built_for
    assert parse_version("1.0.0") not in built_for
    assert str(built_for) == ">=0.35,<0.56"


async def served_protocols(app: RealtimeApp, server: ServerThread, count: int) -> list[Any]:
    await eventually(lambda: len(app.hub.connections(1)) == count)
    await eventually(lambda: all(c.live_after is not None for c in app.hub.connections(1)))
    return list(server.server.server_state.connections)


async def test_every_assumption_about_uvicorn_holds_on_a_real_server() -> None:
    app = RealtimeApp()
    server = ServerThread(app.app).start()
    try:
        ws = await client(server, app.token(1, user_id=1))
        assert (await receive(ws))["type"] == "session.ready"
        [protocol] = await served_protocols(app, server, 1)
        # Whatever uvicorn renamed is named here.
        assert probe(protocol) is None
        assert app.endpoint.direct_frames.refused is None
        assert [c.direct for c in app.hub.connections(1)] == [True]
        await ws.close()
    finally:
        server.stop()


class Without:
    """One of uvicorn's objects as a later version might have it: without `name`."""

    def __init__(self, wrapped: object, name: str) -> None:
        self._wrapped = wrapped
        self._name = name

    def __getattr__(self, name: str) -> Any:
        if name == self._name:
            raise AttributeError(name)
        return getattr(self._wrapped, name)


@pytest.mark.parametrize(
    ("renamed", "reason"),
    [
        ("close_sent", "uvicorn's protocol has no close_sent flag"),
        ("transport.write", "uvicorn's protocol has no transport with write()"),
        (
            "transport.get_write_buffer_size",
            "uvicorn's protocol has no transport with get_write_buffer_size()",
        ),
        ("conn.extensions", "uvicorn's protocol has no conn.extensions list"),
    ],
)
async def test_the_probe_finds_an_attribute_uvicorn_renamed(renamed: str, reason: str) -> None:
    app = RealtimeApp()
    server = ServerThread(app.app).start()
    try:
        ws = await client(server, app.token(1, user_id=1))
        assert (await receive(ws))["type"] == "session.ready"
        [protocol] = await served_protocols(app, server, 1)
        later = copy.copy(protocol)
        owner, _, name = renamed.rpartition(".")
        if owner:
            setattr(later, owner, Without(getattr(protocol, owner), name))
        else:
            delattr(later, name)
        assert probe(later) == reason
        direct_frames = DirectFrames()
        assert direct_frames.transport_of(later) is None
        assert direct_frames.refused == reason
        await ws.close()
    finally:
        server.stop()


async def clients_get_every_event(app: RealtimeApp, server: ServerThread) -> None:
    sockets = [await client(server, app.token(1, user_id=1)) for _ in range(3)]
    for ws in sockets:
        assert (await receive(ws))["type"] == "session.ready"
    await served_protocols(app, server, 3)
    ids = await server.call(app.produce(1, 20, size=200))
    for ws in sockets:
        assert ids_of(await receive_events(ws, ids[-1])) == ids
        await nothing_more(ws)
        await ws.close()


async def test_switched_off_every_frame_goes_through_asgi_send() -> None:
    app = RealtimeApp(direct_frames=False)
    server = ServerThread(app.app).start()
    try:
        await clients_get_every_event(app, server)
        assert app.endpoint.direct_frames.refused == "switched off"
        assert app.hub.counters.deliveries == 60
    finally:
        server.stop()


async def test_a_uvicorn_it_was_not_built_for_gets_every_frame_through_asgi_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="realtime.transport")
    direct_frames = DirectFrames(built_for=[VersionRange((0, 1), (0, 2))])
    app = RealtimeApp(direct_frames=direct_frames)
    server = ServerThread(app.app).start()
    try:
        await clients_get_every_event(app, server)
        refused = f"uvicorn {uvicorn.__version__} is not a version this was built for"
        assert (direct_frames.refused or "").startswith(refused)
        # Said once, for the process, not once per connection.
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            f"WebSocket events go through ASGI send: {direct_frames.refused}"
        ]
    finally:
        server.stop()


class BreakableTransport:
    """uvicorn's transport, whose writes of text frames fail once `broken` is set."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.broken and data[:1] == b"\x81":
            raise RuntimeError("the transport changed under us")
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BreakableProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(BreakableTransport(transport))


async def test_a_transport_failing_unexpectedly_closes_its_socket_and_no_other() -> None:
    app = RealtimeApp()
    server = ServerThread(app.app, ws=BreakableProtocol).start()
    try:
        sockets = [await client(server, app.token(1, user_id=1)) for _ in range(3)]
        for ws in sockets:
            assert (await receive(ws))["type"] == "session.ready"
        protocols = await served_protocols(app, server, 3)
        assert [c.direct for c in app.hub.connections(1)] == [True] * 3
        by_port = {protocol.client[1]: protocol for protocol in protocols}
        first, broken, last = sockets
        by_port[broken.local_address[1]].transport.broken = True

        ids = await server.call(app.produce(1, 10))
        for ws in (first, last):
            assert ids_of(await receive_events(ws, ids[-1])) == ids
        assert await closed_with(broken) == 1011
        await eventually(lambda: len(app.hub.connections(1)) == 2)
        # The fan-out goes on for the others.
        more = await server.call(app.produce(1, 3))
        for ws in (first, last):
            assert ids_of(await receive_events(ws, more[-1])) == more
            await ws.close()
    finally:
        server.stop()


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code
