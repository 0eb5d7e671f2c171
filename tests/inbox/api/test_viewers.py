"""Viewers (a user or an API key with role viewer): they read analytics, conversations
and contacts and watch /ws, and every write is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.inbox.conftest import Tenant
from tests.inbox.live.wsclient import drain, frames_until, open_ws, ready, rest

READS = [
    "/api/analytics/overview",
    "/api/analytics/agents",
    "/api/analytics/trends?metric=messages_received",
    "/api/analytics/live",
    "/api/conversations",
    "/api/conversations/{conv}",
    "/api/conversations/{conv}/messages",
    "/api/contacts",
    "/api/contacts/{contact}",
    "/api/organization",
    "/api/auth/me",
]

WRITES = [
    ("POST", "/api/contacts", {"name": "Eve"}),
    ("PATCH", "/api/contacts/{contact}", {"name": "Eve"}),
    ("DELETE", "/api/contacts/{contact}", None),
    ("PATCH", "/api/conversations/{conv}", {"status": "closed"}),
    ("POST", "/api/conversations/{conv}/messages", {"content": "hi"}),
    ("POST", "/api/conversations/{conv}/read", None),
    ("POST", "/api/conversations/{conv}/labels", {"add": ["vip"]}),
    ("POST", "/api/leads", {"name": "Eve"}),
    ("POST", "/api/canned-responses", {"shortcut": "hi", "content": "Hello"}),
    ("PATCH", "/api/organization", {"timezone": "UTC"}),
    ("POST", "/api/api-keys", {"name": "mine", "role": "viewer"}),
    ("POST", "/api/channels", {"kind": "generic", "name": "x", "settings": {}}),
]


@pytest.fixture(params=["user", "api key"])
def viewer(request: Any, service: Any, tenant: Tenant) -> Any:
    if request.param == "user":
        _, api = tenant.user("viewer")
        return api
    return service.client(tenant.api_key(role="viewer"))


def test_a_viewer_reads(tenant, viewer):
    conv = tenant.conversation()
    for path in READS:
        r = viewer.get(path.format(conv=conv.id, contact=conv.contact_id))
        assert r.status_code == 200, (path, r.text)


def test_a_viewer_writes_nothing(tenant, viewer):
    conv = tenant.conversation()
    for method, path, body in WRITES:
        r = viewer.request(method, path.format(conv=conv.id, contact=conv.contact_id), json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    # Nothing changed: the conversation is still open, its contact still there.
    assert tenant.api.get(f"/api/conversations/{conv.id}").json()["status"] == "open"
    assert tenant.api.get(f"/api/contacts/{conv.contact_id}").status_code == 200


def test_a_viewer_reads_no_leads_nor_team_settings(viewer):
    for path in ("/api/leads", "/api/api-keys", "/api/users", "/api/channels"):
        assert viewer.get(path).status_code == 403, path


def test_admins_make_viewer_keys_and_users(tenant):
    r = tenant.api.post("/api/api-keys", json={"name": "wall screen", "role": "viewer"})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "viewer"
    r = tenant.api.post(
        "/api/users",
        json={"email": "wall@example.com", "password": "viewer-password", "role": "viewer"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "viewer"


async def test_a_viewer_watches_the_socket_but_cannot_type(service, tenant):
    conv = tenant.conversation()
    key = tenant.api_key(role="viewer")
    viewer_user, _ = tenant.user("viewer")
    async with rest(service.url, key) as api:
        r = await api.post("/api/realtime/tickets")
        assert r.status_code == 200, r.text
    for label, credential in (("key", key), ("user", service.token_for(viewer_user))):
        async with await open_ws(service.url, credential) as ws:
            await ready(ws)
            await drain(ws)
            async with rest(service.url, service.token_for(tenant.owner)) as owner:
                r = await owner.patch(f"/api/conversations/{conv.id}", json={"labels": [label]})
                assert r.status_code == 200, r.text
            frames = await frames_until(ws, lambda f: f["type"] == "conversation.updated")
            assert frames[-1]["data"]["id"] == conv.id
            await ws.send(f'{{"type": "typing", "conversation_id": {conv.id}}}')
            [refusal] = await frames_until(ws, lambda f: f["type"] == "error")
            assert refusal["code"] == "AUTHORIZATION_FAILED", refusal
    # A viewer is nobody's colleague online.
    async with rest(service.url, service.token_for(tenant.owner)) as owner:
        figures = (await owner.get("/api/analytics/live")).json()
    assert figures["agents_online"] == 0
