"""Ending sessions: a password change or reset, a deactivation and "sign out everywhere"
refuse every access token issued before; reactivating a user revives none of them."""

from __future__ import annotations

from typing import Any

import jwt

PROTECTED = "/api/leads"


def login(service: Any, email: str, password: str) -> Any:
    return service.client().post("/api/auth/login", json={"email": email, "password": password})


def token_of(service: Any, email: str, password: str) -> str:
    r = login(service, email, password)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def assert_revoked(r: Any) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "AUTHENTICATION_FAILED"
    assert error["details"] == {"reason": "revoked"}
    assert r.headers["www-authenticate"] == "Bearer"
    return dict(error)


def test_an_admin_password_reset_ends_every_session_of_the_user(service, tenant):
    user, first = tenant.user("agent", password="old-password-1")
    second = service.client(token_of(service, user.email, "old-password-1"))
    assert first.get(PROTECTED).status_code == 200
    assert second.get(PROTECTED).status_code == 200

    r = tenant.api.patch(f"/api/users/{user.id}", json={"password": "new-password-1"})
    assert r.status_code == 200, r.text

    for client in (first, second):
        error = assert_revoked(client.get(PROTECTED))
        assert "sign in again" in error["message"]
        assert_revoked(client.get("/api/auth/me"))
    assert login(service, user.email, "old-password-1").status_code == 401
    fresh = service.client(token_of(service, user.email, "new-password-1"))
    assert fresh.get(PROTECTED).status_code == 200


def test_a_rename_or_a_role_change_ends_no_session(service, tenant):
    user, client = tenant.user("agent")
    r = tenant.api.patch(f"/api/users/{user.id}", json={"name": "Renamed", "role": "admin"})
    assert r.status_code == 200, r.text
    assert client.get("/api/users").status_code == 200


def test_changing_ones_own_password_ends_the_other_sessions_and_answers_a_new_token(
    service, tenant
):
    user, phone = tenant.user("agent", password="old-password-1")
    laptop = service.client(token_of(service, user.email, "old-password-1"))

    r = laptop.post(
        "/api/auth/password",
        json={"current_password": "old-password-1", "new_password": "new-password-1"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["id"] == user.id
    assert service.client(body["access_token"]).get(PROTECTED).status_code == 200
    assert_revoked(phone.get(PROTECTED))
    assert_revoked(laptop.get(PROTECTED))
    assert login(service, user.email, "old-password-1").status_code == 401
    assert login(service, user.email, "new-password-1").status_code == 200


def test_a_wrong_current_password_changes_nothing(service, tenant):
    user, client = tenant.user("agent", password="old-password-1")
    r = client.post(
        "/api/auth/password",
        json={"current_password": "not-my-password", "new_password": "new-password-1"},
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [f["field"] for f in error["details"]["fields"]] == ["current_password"]
    assert client.get(PROTECTED).status_code == 200
    assert login(service, user.email, "old-password-1").status_code == 200

    short = client.post(
        "/api/auth/password", json={"current_password": "old-password-1", "new_password": "x"}
    )
    assert short.status_code == 422
    assert [f["field"] for f in short.json()["error"]["details"]["fields"]] == ["new_password"]
    assert client.get(PROTECTED).status_code == 200


def test_signing_out_everywhere_ends_every_session_of_the_caller_and_no_one_elses(
    service, tenant
):
    user, first = tenant.user("agent", password="user-password-1")
    second = service.client(token_of(service, user.email, "user-password-1"))
    _, colleague = tenant.user("agent")

    r = first.post("/api/auth/logout-all")
    assert r.status_code == 204, r.text
    assert r.content == b""

    assert_revoked(first.get(PROTECTED))
    assert_revoked(second.get(PROTECTED))
    assert colleague.get(PROTECTED).status_code == 200
    assert tenant.api.get(PROTECTED).status_code == 200
    again = service.client(token_of(service, user.email, "user-password-1"))
    assert again.get(PROTECTED).status_code == 200


def test_an_admin_signs_a_user_out_everywhere(service, tenant, other_tenant):
    _, admin = tenant.user("admin")
    agent_user, agent = tenant.user("agent")

    assert admin.post(f"/api/users/{agent_user.id}/logout-all").status_code == 204
    assert_revoked(agent.get(PROTECTED))
    assert admin.get(PROTECTED).status_code == 200

    # Only an owner touches an owner; an agent signs nobody out; other tenants' users are
    # not found.
    r = admin.post(f"/api/users/{tenant.owner.id}/logout-all")
    assert r.status_code == 403, r.text
    assert tenant.api.get(PROTECTED).status_code == 200
    _, another_agent = tenant.user("agent")
    assert another_agent.post(f"/api/users/{agent_user.id}/logout-all").status_code == 403
    r = admin.post(f"/api/users/{other_tenant.owner.id}/logout-all")
    assert r.status_code == 404, r.text
    assert other_tenant.api.get(PROTECTED).status_code == 200


def test_an_api_key_has_no_session_to_end(service, tenant):
    key = service.client(tenant.api_key("admin"))
    r = key.post("/api/auth/logout-all")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    assert "delete the key" in r.json()["error"]["message"]
    assert key.get(PROTECTED).status_code == 200


def test_reactivation_revives_no_token_issued_before_the_deactivation(service, tenant):
    user, before = tenant.user("agent", password="user-password-1")
    assert tenant.api.post(f"/api/users/{user.id}/deactivate").status_code == 200
    r = tenant.api.patch(f"/api/users/{user.id}", json={"is_active": True})
    assert r.status_code == 200 and r.json()["is_active"] is True

    error = assert_revoked(before.get(PROTECTED))
    assert "sign in again" in error["message"]
    after = service.client(token_of(service, user.email, "user-password-1"))
    assert after.get(PROTECTED).status_code == 200


def test_a_token_carries_the_session_epoch_it_was_issued_in(service, tenant):
    user, _ = tenant.user("agent", password="user-password-1")

    def epoch_of(token: str) -> int:
        claims = jwt.decode(token, service.settings.signing_key, algorithms=["HS256"])
        return int(claims["epoch"])

    first = token_of(service, user.email, "user-password-1")
    assert epoch_of(first) == 0
    assert service.client(first).post("/api/auth/logout-all").status_code == 204
    second = token_of(service, user.email, "user-password-1")
    assert epoch_of(second) == 1
    assert service.client(second).get(PROTECTED).status_code == 200
    assert_revoked(service.client(first).get(PROTECTED))
