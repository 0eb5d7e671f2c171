"""Managing the people of an organization: admins run users, only owners touch owners."""

from __future__ import annotations

import uuid
from typing import Any

PASSWORD = "a-good-long-password"


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    return body["error"]


def fresh_email(name: str = "user") -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@users.example"


def login(service: Any, email: str, password: str) -> Any:
    return service.client().post("/api/auth/login", json={"email": email, "password": password})


def no_password_in(r: Any) -> None:
    assert "password" not in r.text
    assert "$argon2" not in r.text


def test_an_admin_creates_a_user_who_can_then_log_in(service, tenant):
    _, admin = tenant.user("admin")
    email = fresh_email("nia")
    r = admin.post(
        "/api/users", json={"email": email.upper(), "name": "Nia", "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == email
    assert user["name"] == "Nia"
    assert user["role"] == "agent"
    assert user["is_active"] is True
    assert user["organization_id"] == tenant.org_id
    assert user["last_login_at"] is None
    no_password_in(r)

    r = login(service, email, PASSWORD)
    assert r.status_code == 200
    assert r.json()["user"]["id"] == user["id"]
    assert admin.get(f"/api/users/{user['id']}").json()["last_login_at"] is not None


def test_an_admin_lists_users_with_filters(tenant):
    admin_user, admin = tenant.user("admin")
    agent_user, _ = tenant.user("agent")
    gone_user, _ = tenant.user("agent")
    admin.post(f"/api/users/{gone_user.id}/deactivate")

    page = admin.get("/api/users").json()
    assert [u["id"] for u in page["data"]] == [
        tenant.owner.id, admin_user.id, agent_user.id, gone_user.id
    ]
    assert page["pagination"] == {"total": 4, "limit": 50, "offset": 0, "has_more": False}
    agents = admin.get("/api/users", params={"role": "agent"}).json()["data"]
    assert [u["id"] for u in agents] == [agent_user.id, gone_user.id]
    inactive = admin.get("/api/users", params={"active": "false"}).json()["data"]
    assert [u["id"] for u in inactive] == [gone_user.id]
    second = admin.get("/api/users", params={"limit": 1, "offset": 1}).json()
    assert [u["id"] for u in second["data"]] == [admin_user.id]
    assert second["pagination"]["has_more"] is True


def test_an_admin_updates_name_role_and_password(service, tenant):
    user, _ = tenant.user("agent", password="the-first-password")
    _, admin = tenant.user("admin")
    r = admin.patch(f"/api/users/{user.id}", json={"name": "Renamed", "role": "admin"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed"
    assert r.json()["role"] == "admin"
    assert r.json()["email"] == user.email

    r = admin.patch(f"/api/users/{user.id}", json={"password": "the-second-password"})
    assert r.status_code == 200
    no_password_in(r)
    assert login(service, user.email, "the-first-password").status_code == 401
    assert login(service, user.email, "the-second-password").status_code == 200


def test_an_admin_deactivates_a_user(service, tenant):
    user, client = tenant.user("agent", password=PASSWORD)
    _, admin = tenant.user("admin")
    r = admin.post(f"/api/users/{user.id}/deactivate")
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert admin.get(f"/api/users/{user.id}").json()["is_active"] is False
    assert login(service, user.email, PASSWORD).status_code == 401
    assert client.get("/api/auth/me").status_code == 401


def test_email_is_unique_whatever_its_case(tenant):
    email = fresh_email("dup")
    assert tenant.api.post(
        "/api/users", json={"email": email, "password": PASSWORD}
    ).status_code == 201
    for variant in (email, email.upper(), email.capitalize()):
        r = tenant.api.post("/api/users", json={"email": variant, "password": PASSWORD})
        assert_error(r, 409, "CONFLICT")
    users = tenant.api.get("/api/users").json()["data"]
    assert [u["email"] for u in users].count(email) == 1


def test_password_must_be_long_enough(tenant):
    r = tenant.api.post("/api/users", json={"email": fresh_email(), "password": "short"})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert [f["field"] for f in error["details"]["fields"]] == ["password"]
    assert tenant.api.get("/api/users").json()["pagination"]["total"] == 1

    user, _ = tenant.user("agent")
    r = tenant.api.patch(f"/api/users/{user.id}", json={"password": "short"})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert [f["field"] for f in error["details"]["fields"]] == ["password"]


def test_invalid_email_and_role_are_named(tenant):
    r = tenant.api.post(
        "/api/users", json={"email": "not-an-email", "password": PASSWORD, "role": "boss"}
    )
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert {f["field"] for f in error["details"]["fields"]} == {"email", "role"}


def test_an_admin_cannot_create_an_owner_but_an_owner_can(tenant):
    _, admin = tenant.user("admin")
    body = {"email": fresh_email("boss"), "password": PASSWORD, "role": "owner"}
    assert_error(admin.post("/api/users", json=body), 403, "AUTHORIZATION_FAILED")
    assert tenant.api.get("/api/users", params={"role": "owner"}).json()["pagination"][
        "total"
    ] == 1

    r = tenant.api.post("/api/users", json=body)
    assert r.status_code == 201
    assert r.json()["role"] == "owner"


def test_an_admin_cannot_modify_an_owner_or_grant_ownership(tenant):
    _, admin = tenant.user("admin")
    agent, _ = tenant.user("agent")
    owner_before = admin.get(f"/api/users/{tenant.owner.id}").json()

    for r in (
        admin.patch(f"/api/users/{tenant.owner.id}", json={"name": "Demoted"}),
        admin.patch(f"/api/users/{tenant.owner.id}", json={"role": "agent"}),
        admin.post(f"/api/users/{tenant.owner.id}/deactivate"),
        admin.patch(f"/api/users/{agent.id}", json={"role": "owner"}),
    ):
        assert_error(r, 403, "AUTHORIZATION_FAILED")
    assert admin.get(f"/api/users/{tenant.owner.id}").json() == owner_before
    assert admin.get(f"/api/users/{agent.id}").json()["role"] == "agent"

    r = tenant.api.patch(f"/api/users/{agent.id}", json={"role": "owner"})
    assert r.status_code == 200
    assert r.json()["role"] == "owner"


def test_nobody_can_deactivate_themself_or_change_their_own_role(tenant):
    admin_user, admin = tenant.user("admin")
    for client, me in ((admin, admin_user), (tenant.api, tenant.owner)):
        for r in (
            client.post(f"/api/users/{me.id}/deactivate"),
            client.patch(f"/api/users/{me.id}", json={"is_active": False}),
            client.patch(f"/api/users/{me.id}", json={"role": "agent"}),
        ):
            assert_error(r, 409, "CONFLICT")
        mine = client.get(f"/api/users/{me.id}").json()
        assert (mine["role"], mine["is_active"]) == (me.role, True)
    # Their own name is theirs to change.
    r = admin.patch(f"/api/users/{admin_user.id}", json={"name": "Still Admin"})
    assert r.status_code == 200


def test_the_last_active_owner_cannot_be_demoted_or_deactivated(service, tenant):
    # An owner-level key acting for the organization meets the rule even though it is not
    # the owner itself.
    key = service.client(tenant.api_key("owner"))
    for r in (
        key.patch(f"/api/users/{tenant.owner.id}", json={"role": "admin"}),
        key.post(f"/api/users/{tenant.owner.id}/deactivate"),
    ):
        error = assert_error(r, 409, "CONFLICT")
        assert "owner" in error["message"]
    owner = tenant.api.get(f"/api/users/{tenant.owner.id}").json()
    assert (owner["role"], owner["is_active"]) == ("owner", True)


def test_one_of_two_owners_can_be_demoted(tenant):
    second, second_client = tenant.user("owner")
    r = tenant.api.patch(f"/api/users/{second.id}", json={"role": "admin"})
    assert r.status_code == 200
    assert r.json()["role"] == "admin"
    # The demoted owner can no longer touch the remaining owner.
    r = second_client.patch(f"/api/users/{tenant.owner.id}", json={"role": "admin"})
    assert_error(r, 403, "AUTHORIZATION_FAILED")


def test_a_deactivated_co_owner_can_still_be_demoted(tenant):
    second, _ = tenant.user("owner")
    assert tenant.api.post(f"/api/users/{second.id}/deactivate").status_code == 200
    # The organization keeps its one active owner either way.
    r = tenant.api.patch(f"/api/users/{second.id}", json={"role": "agent"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "agent"


def test_no_response_ever_shows_a_password_hash(service, tenant):
    email = fresh_email("hash")
    responses = [
        tenant.api.post("/api/users", json={"email": email, "password": PASSWORD}),
    ]
    user_id = responses[0].json()["id"]
    responses += [
        tenant.api.get("/api/users"),
        tenant.api.get(f"/api/users/{user_id}"),
        tenant.api.patch(f"/api/users/{user_id}", json={"name": "Hidden", "password": PASSWORD}),
        login(service, email, PASSWORD),
        tenant.api.get("/api/auth/me"),
        tenant.api.post(f"/api/users/{user_id}/deactivate"),
    ]
    for r in responses:
        assert r.status_code in (200, 201), r.text
        no_password_in(r)


def test_unknown_fields_are_rejected(tenant):
    user, _ = tenant.user("agent")
    r = tenant.api.patch(f"/api/users/{user.id}", json={"password_hash": "x" * 20})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == "password_hash"
    r = tenant.api.patch(f"/api/users/{user.id}", json={"organization_id": 1})
    assert_error(r, 422, "VALIDATION_ERROR")
