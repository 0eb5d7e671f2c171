"""The socket cap holds against a burst: handshakes that arrive together cannot all pass
the count before any of them is counted, even where accepting a socket waits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from support import BackgroundLoop, LiveServer
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from inbox.app import create_app
from inbox.db import Database
from tests.inbox.conftest import Service, make_settings
from tests.inbox.live.wsclient import open_ws, ready
from tests.inbox.ratelimit.budgets import stop

pytestmark = pytest.mark.backend("sqlite")

CAP = 5


class AcceptWaits:
    """The service behind a server whose accept waits for its write to go out, as ASGI
    lets any server's ``send`` do (uvicorn's happens not to): every handshake of a burst
    reaches the cap's count while the first accepts are still on their way."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def waiting(message: Any) -> None:
            if message["type"] == "websocket.accept":
                await asyncio.sleep(0.05)
            await send(message)

        await self.app(scope, receive, waiting if scope["type"] == "websocket" else send)


@pytest.fixture(scope="module")
def capped(database_url: str, loop: BackgroundLoop) -> Iterator[Service]:
    settings = make_settings(database_url, max_sockets_per_user=CAP)
    app = create_app(settings)
    server = LiveServer(AcceptWaits(app), loop)
    server.start()
    db = Database(database_url)
    service = Service(server.url, server.ws_url, settings, db, loop, db.dialect, app=app)
    yield service
    stop(service, server)


async def outcome(ws: ClientConnection) -> str | int | None:
    """"ready" for a socket the service kept, else the code it was closed with."""
    try:
        await ready(ws)
    except ConnectionClosed:
        return ws.close_code
    return "ready"


async def burst(service: Service, credential: str, count: int) -> list[ClientConnection]:
    return list(await asyncio.gather(*(open_ws(service.url, credential) for _ in range(count))))


async def test_twenty_handshakes_at_once_get_exactly_the_cap(capped):
    token = capped.token_for(capped.new_tenant().owner)
    sockets = await burst(capped, token, 20)
    try:
        outcomes = await asyncio.gather(*(outcome(ws) for ws in sockets))
        assert sorted(outcomes, key=str) == [4429] * (20 - CAP) + ["ready"] * CAP
        refused = [ws for ws, o in zip(sockets, outcomes, strict=True) if o == 4429]
        assert all(f"at most {CAP}" in (ws.close_reason or "") for ws in refused)
    finally:
        for ws in sockets:
            await ws.close()
    # Every slot comes back once its socket is gone: the whole cap again, and no more.
    again = await burst(capped, token, CAP + 1)
    try:
        outcomes = await asyncio.gather(*(outcome(ws) for ws in again))
        assert sorted(outcomes, key=str) == [4429] + ["ready"] * CAP
    finally:
        for ws in again:
            await ws.close()


async def test_an_api_key_s_burst_is_capped_as_well(capped):
    tenant = capped.new_tenant()
    key = tenant.api_key()
    # Read once already: its handshakes wait for no database before the count.
    assert capped.client(key).get("/api/leads").status_code == 200
    sockets = await burst(capped, key, 12)
    try:
        outcomes = await asyncio.gather(*(outcome(ws) for ws in sockets))
        assert outcomes.count("ready") == CAP
        assert outcomes.count(4429) == 12 - CAP
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_refused_handshake_takes_no_slot(capped):
    tenant = capped.new_tenant()
    token = capped.token_for(tenant.owner)
    expired = capped.token_for(tenant.owner, ttl=-60)
    for _ in range(CAP + 2):
        with pytest.raises(Exception, match="403"):
            await open_ws(capped.url, expired)
    sockets = [await open_ws(capped.url, token) for _ in range(CAP)]
    try:
        assert [await outcome(ws) for ws in sockets] == ["ready"] * CAP
    finally:
        for ws in sockets:
            await ws.close()
