"""Live figures (``GET /api/analytics/live`` and ``metrics.update``) and presence
(``agent.status``) as the service reports them."""

from __future__ import annotations

import asyncio
from typing import Any

from inbox.models import Lead
from inbox.services.metrics import LiveMetrics
from tests.inbox.live.wsclient import (
    drain,
    frames_for,
    frames_until,
    of_type,
    open_ws,
    ready,
    rest,
)


async def _live_figures(api: Any) -> dict[str, Any]:
    r = await api.get("/api/analytics/live")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_live_figures_match_the_data(service, tenant):
    token = service.token_for(tenant.owner)
    first = tenant.conversation(messages=2)
    pending = tenant.conversation(messages=1)
    closed = tenant.conversation(messages=3)
    busy, _ = tenant.user("agent")
    quiet, _ = tenant.user("agent")
    tenant.user("agent")  # never connects
    async with rest(service.url, token) as api:
        for conv, status in ((pending, "pending"), (closed, "closed")):
            r = await api.patch(f"/api/conversations/{conv.id}", json={"status": status})
            assert r.status_code == 200, r.text
        r = await api.patch(f"/api/conversations/{pending.id}", json={"assignee_id": busy.id})
        assert r.status_code == 200, r.text
        for body in ({"content": "On it"}, {"content": "internal", "private": True}):
            r = await api.post(f"/api/conversations/{first.id}/messages", json=body)
            assert r.status_code == 201, r.text
        for name in ("Ann", "Ben"):
            assert (await api.post("/api/leads", json={"name": name})).status_code == 201
        async with (
            await open_ws(service.url, tenant.api_key()) as watcher,
            await open_ws(service.url, service.token_for(busy)) as a,
            await open_ws(service.url, service.token_for(busy)) as b,
            await open_ws(service.url, service.token_for(quiet)) as c,
        ):
            for ws in (watcher, a, b, c):
                await ready(ws)
                await drain(ws)
            figures = await _live_figures(api)
            avg = figures.pop("avg_first_response_seconds_today")
            median = figures.pop("median_first_response_seconds_today")
            assert figures == {
                "open_conversations": 1,
                "pending_conversations": 1,
                # Closed conversations' unread messages do not count.
                "unread_messages": 2 + 1,
                "messages_today_inbound": 2 + 1 + 3,
                # The private note is not a message to the customer.
                "messages_today_outbound": 1,
                "leads_today": 2,
                "agents_online": 2,
                # The open one; the pending one has an agent.
                "unassigned_conversations": 1,
            }
            # The reply went out on the generic channel, which has nowhere to send it: a
            # reply that failed is no first response.
            assert avg is None and median is None
            # The figures pushed last say the same.
            pushed = await frames_until(
                watcher,
                lambda f: f["type"] == "metrics.update" and f["data"]["agents_online"] == 2,
            )
            assert pushed[-1]["data"] == {
                **figures,
                "avg_first_response_seconds_today": avg,
                "median_first_response_seconds_today": median,
            }


async def test_a_burst_of_writes_is_coalesced_into_a_few_updates(service, tenant):
    token = service.token_for(tenant.owner)
    async with (
        rest(service.url, token) as api,
        await open_ws(service.url, tenant.api_key()) as one,
        await open_ws(service.url, tenant.api_key()) as two,
    ):
        await ready(one)
        await ready(two)
        lanes = asyncio.Semaphore(4)

        async def write(n: int) -> None:
            async with lanes:
                r = await api.post("/api/leads", json={"name": f"Burst {n}"})
                assert r.status_code == 201

        await asyncio.gather(*(write(n) for n in range(30)))
        expected = await _live_figures(api)
        assert expected["leads_today"] == 30

        async def updates_seen(ws: Any) -> list[dict[str, Any]]:
            frames = await frames_until(
                ws, lambda f: f["type"] == "metrics.update" and f["data"] == expected
            )
            # A pending update may still come: it can only say the same.
            frames += await frames_for(ws, 1.5)
            return of_type(frames, "metrics.update")

        seen = await asyncio.gather(updates_seen(one), updates_seen(two))
    updates = seen[0]
    assert 1 <= len(updates) <= 10, len(updates)
    assert updates[-1]["data"] == expected
    # Computed once and sent to everyone: the very same frames.
    assert seen[1] == updates


async def test_agent_status_follows_the_first_and_last_connection(service, tenant):
    agent, _ = tenant.user("agent")
    token = service.token_for(agent)

    def about_agent(frames: list[dict[str, Any]]) -> list[str]:
        return [f["data"]["status"] for f in of_type(frames, "agent.status")
                if f["data"]["user_id"] == agent.id]

    async with (
        rest(service.url, service.token_for(tenant.owner)) as api,
        await open_ws(service.url, tenant.api_key()) as observer,
    ):
        await ready(observer)
        first = await open_ws(service.url, token)
        await ready(first)
        frames = await frames_until(observer, lambda f: f["type"] == "agent.status")
        assert about_agent(frames) == ["online"]
        assert (await _live_figures(api))["agents_online"] == 1

        second = await open_ws(service.url, token)
        await ready(second)
        await drain(second)
        await first.close()
        # Long enough for a wrong "offline" to show up; none may.
        frames = await frames_for(observer, 0.5)
        assert about_agent(frames) == []
        assert (await _live_figures(api))["agents_online"] == 1

        await second.close()
        frames = await frames_until(observer, lambda f: f["type"] == "agent.status")
        assert about_agent(frames) == ["offline"]
        assert (await _live_figures(api))["agents_online"] == 0
        # The figures follow presence too.
        frames = await frames_until(
            observer, lambda f: f["type"] == "metrics.update" and f["data"]["agents_online"] == 0
        )
        assert about_agent(frames) == []


def test_a_change_during_a_computation_gets_an_update_of_its_own(service, tenant):
    """The snapshot being published may predate a write that touched it meanwhile."""
    published: list[dict[str, Any]] = []

    async def scenario() -> None:
        first_publish = asyncio.Event()
        release = asyncio.Event()

        async def publish(org_id: int, figures: dict[str, Any]) -> None:
            published.append(figures)
            first_publish.set()
            await release.wait()

        async def nobody_online(org_id: int) -> int:
            return 0

        metrics = LiveMetrics(service.db, publish, nobody_online, interval=0.05)
        metrics.touch(tenant.org_id)
        await first_publish.wait()
        # Computed already, still being published: a lead comes in and touches.
        await seed_lead(service.db, tenant.org_id)
        metrics.touch(tenant.org_id)
        release.set()
        for _ in range(200):
            if len(published) == 2:
                break
            await asyncio.sleep(0.01)
        await metrics.close()

    service.run(scenario())
    assert [p["leads_today"] for p in published] == [0, 1]


async def seed_lead(db: Any, org_id: int) -> None:
    async with db.session() as session:
        session.add(Lead(organization_id=org_id, name="Late"))
        await session.commit()
