"""API keys: shown once at creation, stored hashed, revocable, managed by admins."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

PUBLIC_FIELDS = {"id", "name", "role", "prefix", "scopes", "created_at", "created_by_id",
                 "owner_id", "expires_at", "last_used_at", "status"}


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    return body["error"]


def at(timestamp: str) -> datetime:
    assert timestamp.endswith("Z")
    return datetime.fromisoformat(timestamp)


def test_creating_a_key_shows_it_once_with_its_prefix(tenant):
    r = tenant.api.post("/api/api-keys", json={"name": "Dashboard"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == PUBLIC_FIELDS | {"key"}
    assert created["name"] == "Dashboard"
    assert created["role"] == "agent"
    assert created["last_used_at"] is None
    assert created["created_at"].endswith("Z")
    assert created["key"].startswith(created["prefix"])
    assert created["prefix"].startswith("ibx_")
    assert len(created["key"]) > len(created["prefix"]) + 20


def test_the_list_never_shows_the_key_or_its_hash(tenant):
    created = tenant.api.post("/api/api-keys", json={"name": "Dashboard", "role": "admin"}).json()
    key = created["key"]
    r = tenant.api.get("/api/api-keys")
    assert r.status_code == 200
    [listed] = r.json()["data"]
    assert set(listed) == PUBLIC_FIELDS
    assert listed == {k: v for k, v in created.items() if k != "key"}
    assert key not in r.text
    assert hashlib.sha256(key.encode()).hexdigest() not in r.text


def test_last_used_at_is_set_once_the_key_is_used(service, tenant):
    created = tenant.api.post("/api/api-keys", json={"name": "Dashboard"}).json()
    [before] = tenant.api.get("/api/api-keys").json()["data"]
    assert before["last_used_at"] is None

    assert service.client(created["key"]).get("/api/leads").status_code == 200
    [after] = tenant.api.get("/api/api-keys").json()["data"]
    assert after["last_used_at"] is not None
    assert at(after["last_used_at"]) >= at(created["created_at"])


def test_deleting_a_key_revokes_it(service, tenant):
    keep = tenant.api.post("/api/api-keys", json={"name": "Keep"}).json()
    drop = tenant.api.post("/api/api-keys", json={"name": "Drop"}).json()

    assert tenant.api.delete(f"/api/api-keys/{drop['id']}").status_code == 204
    assert [k["id"] for k in tenant.api.get("/api/api-keys").json()["data"]] == [keep["id"]]
    assert_error(service.client(drop["key"]).get("/api/leads"), 401, "AUTHENTICATION_FAILED")
    assert service.client(keep["key"]).get("/api/leads").status_code == 200
    # Gone is gone: a second delete finds nothing.
    assert_error(tenant.api.delete(f"/api/api-keys/{drop['id']}"), 404, "RESOURCE_NOT_FOUND")


def test_a_key_acts_with_its_role(service, tenant):
    agent_key = tenant.api.post("/api/api-keys", json={"name": "a"}).json()["key"]
    admin_key = tenant.api.post("/api/api-keys", json={"name": "b", "role": "admin"}).json()["key"]
    assert_error(service.client(agent_key).get("/api/users"), 403, "AUTHORIZATION_FAILED")
    assert service.client(admin_key).get("/api/users").status_code == 200


def test_a_key_cannot_be_made_an_owner(tenant):
    r = tenant.api.post("/api/api-keys", json={"name": "root", "role": "owner"})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == "role"
    assert tenant.api.get("/api/api-keys").json()["data"] == []


def test_a_key_needs_a_name(tenant):
    r = tenant.api.post("/api/api-keys", json={})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == "name"


def test_an_agent_cannot_manage_keys(service, tenant):
    existing = tenant.api.post("/api/api-keys", json={"name": "Existing"}).json()
    _, agent = tenant.user("agent")
    for r in (
        agent.get("/api/api-keys"),
        agent.post("/api/api-keys", json={"name": "Mine"}),
        agent.delete(f"/api/api-keys/{existing['id']}"),
    ):
        error = assert_error(r, 403, "AUTHORIZATION_FAILED")
        assert existing["key"] not in r.text
        assert "admin" in error["message"]
    assert [k["id"] for k in tenant.api.get("/api/api-keys").json()["data"]] == [existing["id"]]
    assert service.client(existing["key"]).get("/api/leads").status_code == 200


def test_an_admin_manages_keys(tenant):
    _, admin = tenant.user("admin")
    created = admin.post("/api/api-keys", json={"name": "From admin"})
    assert created.status_code == 201
    assert [k["name"] for k in admin.get("/api/api-keys").json()["data"]] == ["From admin"]
    assert admin.delete(f"/api/api-keys/{created.json()['id']}").status_code == 204
