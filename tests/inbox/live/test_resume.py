"""Resuming with ``last_event_id``: the missed events exactly once and in order, then the
live ones, even while writes go on; ``replay.truncated`` past the outbox's retention."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from inbox.live.outbox_log import OutboxLog
from inbox.models import Event, utcnow
from inbox.services.outbox import unit_of_work
from tests.inbox.live.wsclient import (
    closed_with,
    drain,
    events_until,
    extra_server,
    frames_until,
    ids_of,
    live_of,
    on_loop,
    open_ws,
    ready,
    receive,
    rest,
    stored,
)


async def _leads(api: Any, count: int, label: str = "Lead") -> list[dict[str, Any]]:
    """Create leads through REST, a few requests at a time; their JSON in id order."""
    lanes = asyncio.Semaphore(6)

    async def one(n: int) -> Any:
        async with lanes:
            return await api.post("/api/leads", json={"name": f"{label} {n}"})

    answers = await asyncio.gather(*(one(n) for n in range(count)))
    assert {a.status_code for a in answers} == {201}
    return sorted((a.json() for a in answers), key=lambda lead: lead["id"])


async def test_a_client_resumes_exactly_where_it_left_off(service, tenant):
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        async with await open_ws(service.url, token) as ws:
            assert (await ready(ws))["last_event_id"] == 0
            await _leads(api, 5)
            first = stored(await events_until(ws, 5))
        assert ids_of(first) == [1, 2, 3, 4, 5]
        # Away while 500 are written.
        await _leads(api, 500, "Missed")
        async with await open_ws(service.url, token, "last_event_id=5") as ws:
            assert (await ready(ws))["last_event_id"] == 5
            # More writes race the replay.
            racing = asyncio.create_task(_leads(api, 60, "Racing"))
            frames = await events_until(ws, 565)
            await racing
            frames += await drain(ws)
            live = await _leads(api, 3, "Live")
            frames += await events_until(ws, 568)
    events = stored(frames)
    assert ids_of(events) == list(range(6, 569))
    assert {e["type"] for e in events} == {"lead.created"}
    # Created at once, they commit (and are numbered as events) in any order.
    assert sorted((e["data"] for e in events[-3:]), key=lambda lead: lead["id"]) == live


async def test_twenty_reconnects_during_a_stream_leave_no_gap(service, tenant):
    """A writer emits 2,000 events in batches; the client drops its connection 20 times."""
    live = live_of(service)
    db = service.app.state.inbox.db
    lead = tenant.api.post("/api/leads", json={"name": "Often updated"}).json()
    total = 1 + 2000

    async def writer() -> None:
        for _ in range(100):
            async with unit_of_work(db, tenant.org_id, live) as tx:
                for _ in range(20):
                    tx.emit("lead.updated", lead)
            await asyncio.sleep(0.002)

    token = service.token_for(tenant.owner)
    seen: list[int] = []
    rng = random.Random(7)
    writing = asyncio.ensure_future(on_loop(service.loop.loop, writer()))
    reconnects = 0
    last = 0
    while last < total:
        async with await open_ws(service.url, token, f"last_event_id={last}") as ws:
            await ready(ws)
            take = rng.randint(40, 120) if reconnects < 20 else total
            got: list[int] = []
            while len(got) < take and last < total:
                frame = await receive(ws)
                if "id" in frame:
                    got.append(frame["id"])
                    last = max(last, frame["id"])
            # Each connection's stream is in order, with nothing repeated.
            assert got == sorted(set(got)), got
            seen += got
        reconnects += 1
    await writing
    assert reconnects > 20
    assert sorted(set(seen)) == list(range(1, total + 1))


async def _age(service: Any, org_id: int, upto: int, days: int) -> None:
    async with service.db.session() as session:
        await session.exec(
            update(Event)
            .where(col(Event.organization_id) == org_id, col(Event.id) <= upto)
            .values(created_at=utcnow() - timedelta(days=days))
        )
        await session.commit()


async def test_resuming_from_before_retention_is_told_to_reload(service, tenant):
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        for n in range(8):
            assert (await api.post("/api/leads", json={"name": f"L{n}"})).status_code == 201
        service.run(_age(service, tenant.org_id, 5, days=8))
        assert service.run(OutboxLog(service.db, 7).prune()) == 5

        async with await open_ws(service.url, token, "last_event_id=2") as ws:
            assert (await ready(ws))["last_event_id"] == 2
            assert await receive(ws) == {"type": "replay.truncated"}
            # The stream goes on live after the notice.
            await api.post("/api/leads", json={"name": "After the notice"})
            assert ids_of(stored(await frames_until(ws, lambda f: "id" in f))) == [9]

        async with await open_ws(service.url, token, "last_event_id=5") as ws:
            await ready(ws)
            assert ids_of(stored(await events_until(ws, 9))) == [6, 7, 8, 9]

        for position in (0, 4, 50):
            async with await open_ws(service.url, token, f"last_event_id={position}") as ws:
                await ready(ws)
                frames = await drain(ws)
                assert [f["type"] for f in frames if f["type"] != "metrics.update"][:1] == [
                    "replay.truncated"
                ], (position, frames)
                assert stored(frames) == []


async def test_a_restart_closes_with_1012_and_the_client_resumes_on_the_next_server(
    database_url, loop
):
    with extra_server(database_url, loop) as (service, server):
        tenant = service.new_tenant()
        token = service.token_for(tenant.owner)
        async with rest(service.url, token) as api:
            ws = await open_ws(service.url, token)
            await ready(ws)
            await _leads(api, 3)
            last = ids_of(stored(await events_until(ws, 3)))[-1]
            stopping = asyncio.ensure_future(asyncio.to_thread(server.stop))
            assert await closed_with(ws) == 1012
            await stopping
    # The next server (same database) replays what the client missed meanwhile.
    with extra_server(database_url, loop) as (service, _server):
        async with rest(service.url, token) as api:
            await _leads(api, 2, "Meanwhile")
            async with await open_ws(service.url, token, f"last_event_id={last}") as ws:
                await ready(ws)
                assert ids_of(stored(await events_until(ws, 5))) == [4, 5]
