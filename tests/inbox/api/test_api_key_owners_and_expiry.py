"""API keys act for a user and may expire: a key stops while its owner is deactivated
(until an admin transfers it) and once its expiry passes; the list shows who made it,
who owns it, when it expires, when it was last used and whether it works."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

PROTECTED = "/api/leads"


def refused(r: Any, reason: str) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "AUTHENTICATION_FAILED"
    assert error["details"] == {"reason": reason}
    return dict(error)


def listed(tenant: Any, key_id: int) -> dict[str, Any]:
    [row] = [k for k in tenant.api.get("/api/api-keys").json()["data"] if k["id"] == key_id]
    return dict(row)


def field_of(r: Any) -> list[str]:
    assert r.status_code == 422, r.text
    return [f["field"] for f in r.json()["error"]["details"]["fields"]]


def test_a_key_records_who_made_it_and_acts_for_them(service, tenant):
    admin_user, admin = tenant.user("admin")
    created = admin.post("/api/api-keys", json={"name": "Dashboard"}).json()
    assert created["created_by_id"] == admin_user.id
    assert created["owner_id"] == admin_user.id
    assert created["scopes"] == ["api"]
    assert created["expires_at"] is None
    assert created["status"] == "active"

    assert service.client(created["key"]).get(PROTECTED).status_code == 200
    row = listed(tenant, created["id"])
    assert row["last_used_at"] is not None
    assert {k: v for k, v in row.items() if k != "last_used_at"} == {
        k: v for k, v in created.items() if k not in ("key", "last_used_at")
    }


def test_a_key_stops_while_its_owner_is_deactivated_until_an_admin_transfers_it(
    service, tenant
):
    admin_user, admin = tenant.user("admin")
    created = admin.post("/api/api-keys", json={"name": "Dashboard"}).json()
    key = service.client(created["key"])
    assert key.get(PROTECTED).status_code == 200  # and now remembered by the process

    assert tenant.api.post(f"/api/users/{admin_user.id}/deactivate").status_code == 200
    error = refused(key.get(PROTECTED), "revoked")
    assert "transfer" in error["message"]
    refused(service.client().get(PROTECTED, headers={"X-Api-Key": created["key"]}), "revoked")
    assert listed(tenant, created["id"])["status"] == "suspended"

    r = tenant.api.patch(f"/api/api-keys/{created['id']}", json={"owner_id": tenant.owner.id})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["owner_id"], moved["created_by_id"], moved["status"]) == (
        tenant.owner.id, admin_user.id, "active")
    assert "key" not in moved
    assert key.get(PROTECTED).status_code == 200


def test_a_key_made_with_a_key_acts_for_that_keys_owner(service, tenant):
    admin_user, admin = tenant.user("admin")
    parent = admin.post("/api/api-keys", json={"name": "Parent", "role": "admin"}).json()
    child = service.client(parent["key"]).post("/api/api-keys", json={"name": "Child"}).json()
    assert child["owner_id"] == admin_user.id
    assert service.client(child["key"]).get(PROTECTED).status_code == 200

    assert tenant.api.post(f"/api/users/{admin_user.id}/deactivate").status_code == 200
    refused(service.client(parent["key"]).get(PROTECTED), "revoked")
    refused(service.client(child["key"]).get(PROTECTED), "revoked")


def test_a_key_goes_only_to_an_active_admin_or_owner_of_the_organization(
    service, tenant, other_tenant
):
    admin_user, admin = tenant.user("admin")
    created = admin.post("/api/api-keys", json={"name": "Dashboard"}).json()
    agent, _ = tenant.user("agent")
    gone, _ = tenant.user("admin")
    assert tenant.api.post(f"/api/users/{gone.id}/deactivate").status_code == 200
    for owner_id in (agent.id, gone.id, other_tenant.owner.id, 2_000_000_000, None):
        r = tenant.api.patch(f"/api/api-keys/{created['id']}", json={"owner_id": owner_id})
        assert field_of(r) == ["owner_id"], owner_id
    assert listed(tenant, created["id"])["owner_id"] == admin_user.id
    # Another tenant's key is not found; an agent transfers nothing.
    foreign = other_tenant.api.post("/api/api-keys", json={"name": "Theirs"}).json()
    r = tenant.api.patch(f"/api/api-keys/{foreign['id']}", json={"owner_id": tenant.owner.id})
    assert r.status_code == 404, r.text
    _, agent_client = tenant.user("agent")
    r = agent_client.patch(f"/api/api-keys/{created['id']}", json={"owner_id": agent.id})
    assert r.status_code == 403, r.text


def test_a_key_can_be_renamed(tenant):
    created = tenant.api.post("/api/api-keys", json={"name": "Old"}).json()
    r = tenant.api.patch(f"/api/api-keys/{created['id']}", json={"name": "New"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "New"
    assert listed(tenant, created["id"])["name"] == "New"
    assert field_of(tenant.api.patch(f"/api/api-keys/{created['id']}", json={"name": ""})) == [
        "name"]


def test_an_expired_key_is_refused_as_expired(service, tenant):
    expires_at = datetime.now(UTC) + timedelta(seconds=2)
    created = tenant.api.post(
        "/api/api-keys", json={"name": "Short", "expires_at": expires_at.isoformat()}
    ).json()
    assert datetime.fromisoformat(created["expires_at"]) == expires_at
    key = service.client(created["key"])
    assert key.get(PROTECTED).status_code == 200

    deadline = time.monotonic() + 15
    while (r := key.get(PROTECTED)).status_code == 200:
        assert time.monotonic() < deadline, "the key still works past its expiry"
        time.sleep(0.2)
    assert refused(r, "expired")["message"] == "API key expired"
    assert listed(tenant, created["id"])["status"] == "expired"


def test_an_expiry_is_a_moment_to_come_with_its_time_zone(tenant):
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    for value in (past, naive, "tomorrow"):
        r = tenant.api.post("/api/api-keys", json={"name": "Bad", "expires_at": value})
        assert field_of(r) == ["expires_at"], value
    assert tenant.api.get("/api/api-keys").json()["data"] == []
