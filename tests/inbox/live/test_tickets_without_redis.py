"""Tickets are single use through the database: Redis going away does not break ticket
handshakes, and a ticket store that fails refuses the handshake clearly (503), never
with a 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from servers import create_database, drop_database
from sqlalchemy import text

from inbox import migrate
from inbox.settings import async_database_url
from tests.inbox.live.wsclient import extra_service, open_ws, ready, refusal, rest


@pytest.fixture(scope="module")
def pg_url(postgres_server_url: str) -> Iterator[str]:
    url, name = create_database(postgres_server_url)
    url = async_database_url(url)
    migrate.upgrade(url)
    yield url
    drop_database(postgres_server_url, name)


async def _ticket(api: Any) -> str:
    r = await api.post("/api/realtime/tickets")
    assert r.status_code == 200, r.text
    return str(r.json()["ticket"])


async def _until_unready(api: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (await api.get("/readyz")).status_code != 503:
        assert time.monotonic() < deadline, "/readyz never noticed Redis was gone"
        await asyncio.sleep(0.1)


@pytest.mark.redis
@pytest.mark.postgres
async def test_ticket_handshakes_work_while_redis_is_down(pg_url, loop, own_redis):
    with extra_service(pg_url, loop, redis_url=own_redis.url) as service:
        tenant = service.new_tenant()
        agent, _ = tenant.user("agent")
        async with rest(service.url, service.token_for(agent)) as api:
            before = await _ticket(api)
            own_redis.stop()
            await _until_unready(api)
            during = await _ticket(api)
            for issued in (before, during):
                async with await open_ws(service.url, query=f"ticket={issued}") as ws:
                    session = await ready(ws)
                    assert session["user"]["id"] == agent.id
                # Used is used, Redis or not.
                status, error = await refusal(service.url, query=f"ticket={issued}")
                assert (status, error["details"]) == (403, {"reason": "invalid"})
                assert "used" in error["message"]


async def test_a_ticket_store_that_fails_refuses_the_handshake_with_503(own_database, loop):
    with extra_service(own_database, loop) as service:
        tenant = service.new_tenant()
        async with rest(service.url, service.token_for(tenant.owner)) as api:
            issued = await _ticket(api)

        async def break_the_store() -> None:
            async with service.db.session(write=True) as session:
                await session.exec(text("DROP TABLE used_tickets"))  # type: ignore[call-overload]
                await session.commit()

        service.run(break_the_store())
        status, error = await refusal(service.url, query=f"ticket={issued}")
        assert status == 503
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert "try again" in error["message"]
        # Bearer handshakes need no ticket store: they go on.
        async with await open_ws(service.url, service.token_for(tenant.owner)) as ws:
            await ready(ws)
