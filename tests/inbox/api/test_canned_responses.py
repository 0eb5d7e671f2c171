"""Canned responses: admins write an organization's ready answers, every member reads
them by short code, and every console hears of each change."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.inbox.live.wsclient import frames_until, of_type, open_ws, ready, rest

GREETING = "Hi {{contact.name}}, this is {{agent.name}}. How can I help?"


def create(api: Any, short_code: str, content: str = GREETING) -> dict[str, Any]:
    r = api.post("/api/canned-responses", json={"short_code": short_code, "content": content})
    assert r.status_code == 201, r.text
    return dict(r.json())


def codes(api: Any, **query: Any) -> list[str]:
    r = api.get("/api/canned-responses", params=query)
    assert r.status_code == 200, r.text
    return [c["short_code"] for c in r.json()["data"]]


def fields_of(r: Any) -> list[str]:
    assert r.status_code == 422, r.text
    return [f["field"] for f in r.json()["error"]["details"]["fields"]]


def test_an_admin_writes_them_and_every_member_reads_them_by_short_code(tenant):
    _admin, admin_api = tenant.user("admin")
    _agent, agent_api = tenant.user("agent")
    created = create(admin_api, "  Greeting ")
    assert set(created) == {"id", "short_code", "content", "created_at", "updated_at"}
    assert created["short_code"] == "greeting" and created["content"] == GREETING
    create(tenant.api, "shipping-times", "Orders ship within 2 days.")
    create(admin_api, "billing_help", "Billing questions: billing@demo.example")

    listed = agent_api.get("/api/canned-responses").json()
    assert [c["short_code"] for c in listed["data"]] == [
        "billing_help", "greeting", "shipping-times"
    ]
    assert listed["pagination"]["total"] == 3
    assert agent_api.get(f"/api/canned-responses/{created['id']}").json() == created
    # q looks in short codes and text, whatever the case.
    assert codes(agent_api, q="SHIP") == ["shipping-times"]
    assert codes(agent_api, q="help") == ["billing_help", "greeting"]
    assert codes(agent_api, q="100%") == []

    r = admin_api.patch(f"/api/canned-responses/{created['id']}", json={"content": "Hello!"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["content"] == "Hello!" and changed["short_code"] == "greeting"
    assert changed["updated_at"] > created["updated_at"]
    r = admin_api.patch(f"/api/canned-responses/{created['id']}", json={"short_code": "Hello"})
    assert r.json()["short_code"] == "hello"

    assert admin_api.delete(f"/api/canned-responses/{created['id']}").status_code == 204
    assert agent_api.get(f"/api/canned-responses/{created['id']}").status_code == 404
    assert codes(agent_api) == ["billing_help", "shipping-times"]


def test_an_agent_uses_them_but_cannot_write_them(tenant):
    existing = create(tenant.api, "thanks", "Thank you!")
    _agent, agent_api = tenant.user("agent")
    writes = [
        agent_api.post("/api/canned-responses", json={"short_code": "x", "content": "y"}),
        agent_api.patch(f"/api/canned-responses/{existing['id']}", json={"content": "Hacked"}),
        agent_api.delete(f"/api/canned-responses/{existing['id']}"),
    ]
    for r in writes:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    assert tenant.api.get(f"/api/canned-responses/{existing['id']}").json() == existing


def test_a_short_code_is_one_per_organization(tenant, other_tenant):
    first = create(tenant.api, "refund")
    second = create(tenant.api, "return")
    for body in ({"short_code": "REFUND", "content": "Again"},):
        r = tenant.api.post("/api/canned-responses", json=body)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "CONFLICT" and "'refund'" in error["message"]
        assert error["details"] == {"short_code": "refund"}
    r = tenant.api.patch(f"/api/canned-responses/{second['id']}", json={"short_code": "refund"})
    assert r.status_code == 409 and "'refund'" in r.json()["error"]["message"]
    # Its own code again is no conflict; another organization may use the same code.
    r = tenant.api.patch(f"/api/canned-responses/{first['id']}", json={"short_code": "refund"})
    assert r.status_code == 200, r.text
    create(other_tenant.api, "refund")


async def test_admins_saving_one_code_at_once_get_one_response_and_conflicts(service, tenant):
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        answers = await asyncio.gather(*(
            api.post("/api/canned-responses", json={"short_code": "race", "content": f"{n}"})
            for n in range(6)
        ))
        listed = (await api.get("/api/canned-responses", params={"q": "race"})).json()
    assert sorted(r.status_code for r in answers) == [201] + [409] * 5
    assert [c["short_code"] for c in listed["data"]] == ["race"]


def test_bad_input_is_refused_with_the_field_named(tenant):
    api = tenant.api
    post = "/api/canned-responses"
    assert fields_of(api.post(post, json={"short_code": "", "content": "x"})) == ["short_code"]
    assert fields_of(api.post(post, json={"short_code": "-dash", "content": "x"})) == [
        "short_code"
    ]
    assert fields_of(api.post(post, json={"short_code": "two words", "content": "x"})) == [
        "short_code"
    ]
    assert fields_of(api.post(post, json={"short_code": "a" * 65, "content": "x"})) == [
        "short_code"
    ]
    assert fields_of(api.post(post, json={"short_code": "ok", "content": ""})) == ["content"]
    assert fields_of(api.post(post, json={"short_code": "ok", "content": "x" * 4001})) == [
        "content"
    ]
    assert fields_of(api.post(post, json={"short_code": "ok"})) == ["content"]
    assert fields_of(api.post(post, json={"short_code": "ok", "content": "x", "id": 1})) == [
        "id"
    ]
    create(api, "a" * 64, "x" * 4000)
    row = create(api, "ok")
    path = f"/api/canned-responses/{row['id']}"
    assert fields_of(api.patch(path, json={"content": None})) == ["content"]
    assert fields_of(api.patch(path, json={"short_code": "no/slash"})) == ["short_code"]
    assert api.get(path).json() == row


def test_another_organizations_canned_responses_are_not_found(tenant, other_tenant):
    theirs = create(other_tenant.api, "secret", "Their text")
    path = f"/api/canned-responses/{theirs['id']}"
    for r in (
        tenant.api.get(path),
        tenant.api.patch(path, json={"content": "Mine now"}),
        tenant.api.delete(path),
    ):
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert codes(tenant.api) == []
    assert other_tenant.api.get(path).json() == theirs


async def test_every_console_sees_each_change_live(service, tenant, other_tenant):
    agent, _ = tenant.user("agent")
    admin, _ = tenant.user("admin")
    async with (
        await open_ws(service.url, service.token_for(agent)) as console,
        await open_ws(service.url, service.token_for(other_tenant.owner)) as stranger,
        rest(service.url, service.token_for(admin)) as api,
        rest(service.url, service.token_for(other_tenant.owner)) as their_api,
    ):
        await ready(console)
        await ready(stranger)
        r = await api.post(
            "/api/canned-responses", json={"short_code": "Hours", "content": "9 to 5"}
        )
        assert r.status_code == 201, r.text
        created = r.json()
        r = await api.patch(f"/api/canned-responses/{created['id']}", json={"content": "9-6"})
        updated = r.json()
        # A change that changes nothing tells no one.
        await api.patch(f"/api/canned-responses/{created['id']}", json={"content": "9-6"})
        assert (await api.delete(f"/api/canned-responses/{created['id']}")).status_code == 204

        frames = await frames_until(console, lambda f: f["type"] == "canned_response.deleted")
        seen = of_type(frames, "canned_response.created", "canned_response.updated",
                       "canned_response.deleted")
        assert [(f["type"], f["data"]) for f in seen] == [
            ("canned_response.created", created),
            ("canned_response.updated", updated),
            ("canned_response.deleted", {"id": created["id"]}),
        ]
        assert all(f["organization_id"] == tenant.org_id and f["id"] for f in seen)
        # Another organization hears nothing of it: its next event is its own.
        await their_api.post(
            "/api/canned-responses", json={"short_code": "theirs", "content": "x"}
        )
        theirs = await frames_until(stranger, lambda f: f["type"].startswith("canned_response"))
        assert [f["data"]["short_code"] for f in of_type(theirs, "canned_response.created")] == [
            "theirs"
        ]
