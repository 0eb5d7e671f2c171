"""The service on Redis pub/sub: Redis going away and coming back mid-stream loses no event
and repeats none; writes go on meanwhile; readiness says what is happening."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from servers import create_database, drop_database

from inbox import migrate
from inbox.settings import async_database_url
from tests.inbox.live.wsclient import (
    drain,
    events_until,
    extra_service,
    frames_until,
    ids_of,
    open_ws,
    ready,
    rest,
    stored,
)
from tests.inbox.platforms import events_of, meta_headers, whatsapp_channel, whatsapp_text

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pg_url(postgres_server_url: str) -> Iterator[str]:
    url, name = create_database(postgres_server_url)
    url = async_database_url(url)
    migrate.upgrade(url)
    yield url
    drop_database(postgres_server_url, name)


async def _ready_status(api: Any) -> int:
    return int((await api.get("/readyz")).status_code)


async def _until_ready_is(api: Any, status: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while await _ready_status(api) != status:
        assert time.monotonic() < deadline, f"/readyz never answered {status}"
        await asyncio.sleep(0.1)


async def test_events_written_while_redis_is_down_reach_everyone_once(
    pg_url, loop, own_redis
):
    with extra_service(pg_url, loop, redis_url=own_redis.url) as service:
        tenant = service.new_tenant()
        channel = whatsapp_channel(tenant)
        agent, _ = tenant.user("agent")
        token = service.token_for(tenant.owner)
        async with (
            rest(service.url, token) as api,
            await open_ws(service.url, token) as owner,
            await open_ws(service.url, service.token_for(agent)) as colleague,
            await open_ws(service.url, tenant.api_key()) as dashboard,
        ):
            clients = [owner, colleague, dashboard]
            for ws in clients:
                await ready(ws)
            assert await _ready_status(api) == 200

            async def leads(count: int, label: str) -> None:
                for n in range(count):
                    r = await api.post("/api/leads", json={"name": f"{label} {n}"})
                    assert r.status_code == 201, r.text

            await leads(5, "Before")
            frames = {id(ws): await events_until(ws, 5) for ws in clients}

            own_redis.stop()
            await _until_ready_is(api, 503)
            # Writes need only the database: they go on.
            await leads(10, "During")
            body = whatsapp_text(channel, "wamid.outage", "anyone there?")
            r = await api.post("/webhooks/whatsapp", content=body,
                               headers=meta_headers(body, channel.secret))
            assert r.status_code == 200, r.text
            await leads(10, "During")
            # Presence lives in Redis: the live figures say they are unavailable.
            r = await api.get("/api/analytics/live")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            # 5 + 10 + (lead, contact, conversation, message, conversation.updated) + 10
            during_last = 30

            own_redis.start()
            await _until_ready_is(api, 200)
            for ws in clients:
                frames[id(ws)] += await events_until(ws, during_last)
            await leads(5, "After")
            for ws in clients:
                frames[id(ws)] += await events_until(ws, during_last + 5)
                frames[id(ws)] += await drain(ws)

        for ws in clients:
            got = stored(frames[id(ws)])
            assert ids_of(got) == list(range(1, during_last + 6))
            assert {f["organization_id"] for f in got} == {tenant.org_id}


async def test_an_agent_who_leaves_while_redis_is_down_is_reported_offline_after(
    pg_url, loop, own_redis
):
    with extra_service(pg_url, loop, redis_url=own_redis.url) as service:
        tenant = service.new_tenant()
        agent, _ = tenant.user("agent")
        stays, _ = tenant.user("agent")

        def status_of(user: Any, status: str) -> Any:
            return lambda f: f["type"] == "agent.status" and f["data"] == {
                "user_id": user.id, "status": status}

        async with (
            rest(service.url, service.token_for(tenant.owner)) as api,
            await open_ws(service.url, tenant.api_key()) as observer,
            await open_ws(service.url, service.token_for(stays)) as staying,
        ):
            await ready(observer)
            await ready(staying)
            leaving = await open_ws(service.url, service.token_for(agent))
            await ready(leaving)
            await frames_until(observer, status_of(agent, "online"))
            own_redis.stop()
            await _until_ready_is(api, 503)
            await leaving.close()
            own_redis.start()
            await _until_ready_is(api, 200)
            # Redis came back empty: what it lost is written again, and told.
            frames = await frames_until(observer, status_of(agent, "offline"))
            assert [f for f in frames if status_of(stays, "offline")(f)] == []
            figures = (await api.get("/api/analytics/live")).json()
            assert figures["agents_online"] == 1


async def test_redis_flapping_five_times_mid_stream_loses_and_repeats_no_event(
    pg_url, loop, own_redis
):
    with extra_service(pg_url, loop, redis_url=own_redis.url) as service:
        tenant = service.new_tenant()
        agent, _ = tenant.user("agent")
        token = service.token_for(tenant.owner)
        async with (
            rest(service.url, token) as api,
            await open_ws(service.url, token) as owner,
            await open_ws(service.url, service.token_for(agent)) as colleague,
            await open_ws(service.url, tenant.api_key()) as dashboard,
        ):
            clients = [owner, colleague, dashboard]
            for ws in clients:
                await ready(ws)
            received: dict[int, list[Any]] = {id(ws): [] for ws in clients}

            async def read(ws: Any) -> None:
                async for raw in ws:
                    received[id(ws)].append(json.loads(raw))

            readers = [asyncio.create_task(read(ws)) for ws in clients]
            streaming = True

            async def stream() -> None:
                n = 0
                while streaming:
                    r = await api.post("/api/leads", json={"name": f"Lead {n}"})
                    assert r.status_code == 201, r.text
                    n += 1

            writer = asyncio.create_task(stream())
            for _flap in range(5):
                own_redis.stop()
                await _until_ready_is(api, 503)
                own_redis.start()
                await _until_ready_is(api, 200)
            streaming = False
            await writer
            last = len(events_of(service, tenant.org_id))
            assert last > 0
            deadline = time.monotonic() + 30
            while not all(any(f.get("id") == last for f in got) for got in received.values()):
                assert time.monotonic() < deadline, "an event never reached a client"
                await asyncio.sleep(0.05)
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for ws in clients:
                received[id(ws)] += await drain(ws)

        for ws in clients:
            assert ids_of(stored(received[id(ws)])) == list(range(1, last + 1))
