"""The team: who works in the organization and who is around, for every member to see;
an agent's own online / away status, told to every console."""

from __future__ import annotations

from typing import Any

import pytest

from tests.inbox.live.wsclient import (
    extra_service,
    frames_until,
    of_type,
    open_ws,
    ready,
    rest,
)


def team(api: Any) -> dict[int, dict[str, Any]]:
    r = api.get("/api/team")
    assert r.status_code == 200, r.text
    return {m["id"]: m for m in r.json()["data"]}


def test_every_member_sees_the_active_team_without_emails(service, tenant, other_tenant):
    agent, agent_api = tenant.user("agent")
    admin, _ = tenant.user("admin")
    gone, _ = tenant.user("agent")
    tenant.api.post(f"/api/users/{gone.id}/deactivate").raise_for_status()

    members = team(agent_api)

    assert set(members) == {tenant.owner.id, agent.id, admin.id}
    assert members[agent.id] == {
        "id": agent.id, "name": agent.name, "role": "agent", "presence": "offline"
    }
    assert members[admin.id]["role"] == "admin"
    assert all(set(m) == {"id", "name", "role", "presence"} for m in members.values())
    # An API key reads it too; another organization sees only its own.
    assert set(team(service.client(tenant.api_key()))) == set(members)
    assert set(team(other_tenant.api)) == {other_tenant.owner.id}
    assert service.client().get("/api/team").status_code == 401


def test_presence_takes_online_or_away_from_users_only(service, tenant):
    _agent, agent_api = tenant.user("agent")
    for body, field in (({"status": "busy"}, "status"), ({}, "status"),
                        ({"status": "away", "extra": 1}, "extra")):
        r = agent_api.post("/api/presence", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["details"]["fields"][0]["field"] == field
    r = service.client(tenant.api_key()).post("/api/presence", json={"status": "away"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "AUTHORIZATION_FAILED"


async def test_online_away_and_offline_as_the_team_and_every_console_see_it(service, tenant):
    agent, _ = tenant.user("agent")
    token = service.token_for(agent)

    def about_agent(frames: list[dict[str, Any]]) -> list[str]:
        return [f["data"]["status"] for f in of_type(frames, "agent.status")
                if f["data"]["user_id"] == agent.id]

    async def presence_of(api: Any) -> str:
        r = await api.get("/api/team")
        assert r.status_code == 200, r.text
        return str({m["id"]: m for m in r.json()["data"]}[agent.id]["presence"])

    async with (
        rest(service.url, service.token_for(tenant.owner)) as owner_api,
        rest(service.url, token) as agent_api,
        await open_ws(service.url, service.token_for(tenant.owner)) as observer,
    ):
        await ready(observer)
        assert await presence_of(owner_api) == "offline"
        console = await open_ws(service.url, token)
        await ready(console)
        frames = await frames_until(observer, lambda f: bool(about_agent([f])))
        assert about_agent(frames) == ["online"]
        assert await presence_of(owner_api) == "online"

        r = await agent_api.post("/api/presence", json={"status": "away"})
        assert r.status_code == 204, r.text
        frames = await frames_until(observer, lambda f: bool(about_agent([f])))
        assert about_agent(frames) == ["away"]
        assert await presence_of(owner_api) == "away"
        # "Agents online" counts as the team list does: the owner, not the agent away.
        live = await owner_api.get("/api/analytics/live")
        assert live.json()["agents_online"] == 1
        await frames_until(observer, lambda f: f["type"] == "metrics.update"
                           and f["data"]["agents_online"] == 1)

        r = await agent_api.post("/api/presence", json={"status": "online"})
        assert r.status_code == 204, r.text
        frames = await frames_until(observer, lambda f: bool(about_agent([f])))
        assert about_agent(frames) == ["online"]
        assert await presence_of(owner_api) == "online"

        await agent_api.post("/api/presence", json={"status": "away"})
        await frames_until(observer, lambda f: bool(about_agent([f])))
        await console.close()
        frames = await frames_until(observer, lambda f: bool(about_agent([f])))
        assert about_agent(frames) == ["offline"]
        # Gone is gone: connecting again starts online, not away.
        assert await presence_of(owner_api) == "offline"
        again = await open_ws(service.url, token)
        await ready(again)
        await frames_until(observer, lambda f: bool(about_agent([f])))
        assert await presence_of(owner_api) == "online"
        await again.close()


@pytest.mark.redis
@pytest.mark.backend("postgres")
async def test_away_said_to_one_process_shows_in_the_others_team(database_url, loop, own_redis):
    # A Redis of their own: presence keys are per deployment, not per test run.
    with (
        extra_service(database_url, loop, redis_url=own_redis.url) as first,
        extra_service(database_url, loop, redis_url=own_redis.url) as second,
    ):
        tenant = first.new_tenant()
        agent, _ = tenant.user("agent")
        token = first.token_for(agent)
        async with (
            rest(first.url, token) as on_first,
            rest(second.url, token) as on_second,
            await open_ws(second.url, first.token_for(tenant.owner)) as observer,
            await open_ws(first.url, token) as console,
        ):
            await ready(observer)
            await ready(console)
            await frames_until(
                observer, lambda f: f["type"] == "agent.status" and f["data"]["status"] == "online"
            )
            r = await on_first.post("/api/presence", json={"status": "away"})
            assert r.status_code == 204, r.text
            frames = await frames_until(
                observer, lambda f: f["type"] == "agent.status" and f["data"]["status"] == "away"
            )
            assert frames[-1]["data"]["user_id"] == agent.id

            members = (await on_second.get("/api/team")).json()["data"]
            assert {m["id"]: m["presence"] for m in members}[agent.id] == "away"
