"""Logging in, and who may call what: access tokens, API keys and roles."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import pytest

PROTECTED = "/api/leads"
SECRET_LEAD = "Confidential Prospect"


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    """The error envelope with its status, and nothing else in the body."""
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def assert_unauthenticated(r: Any) -> None:
    assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert r.headers["www-authenticate"] == "Bearer"
    assert SECRET_LEAD not in r.text


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_of(user: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": str(user.id), "org": user.organization_id, "role": user.role,
              "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def login(service: Any, email: str, password: str) -> Any:
    return service.client().post("/api/auth/login", json={"email": email, "password": password})


# --- logging in --------------------------------------------------------------------------


def test_login_with_the_right_password_gives_a_token_for_that_user(service, tenant):
    user, _ = tenant.user("agent", password="correct horse battery")
    r = login(service, user.email.upper(), "correct horse battery")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == service.settings.access_token_ttl
    assert body["user"]["id"] == user.id
    assert body["user"]["email"] == user.email
    me = service.client(body["access_token"]).get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["id"] == user.id
    assert me.json()["role"] == "agent"
    assert me.json()["organization"]["id"] == tenant.org_id
    assert me.json()["api_key_id"] is None


def test_login_records_the_time_of_the_last_login(service, tenant):
    user, _ = tenant.user("agent", password="correct horse battery")
    assert user.last_login_at is None
    body = login(service, user.email, "correct horse battery").json()
    assert body["user"]["last_login_at"].endswith("Z")


def test_wrong_password_unknown_email_and_deactivated_user_fail_alike(service, tenant):
    user, _ = tenant.user("agent", password="correct horse battery")
    gone, _ = tenant.user("agent", password="correct horse battery")
    assert tenant.api.post(f"/api/users/{gone.id}/deactivate").status_code == 200

    failures = [
        login(service, user.email, "wrong horse battery"),
        login(service, "nobody@nowhere.example", "correct horse battery"),
        login(service, gone.email, "correct horse battery"),
    ]
    messages = {assert_error(r, 401, "AUTHENTICATION_FAILED")["message"] for r in failures}
    assert len(messages) == 1
    assert all("access_token" not in r.text for r in failures)


def test_login_with_a_malformed_body_is_a_validation_error(service):
    r = service.client().post("/api/auth/login", json={"email": "a@b.example"})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert [f["field"] for f in error["details"]["fields"]] == ["password"]


def test_the_token_carries_the_documented_claims_signed_with_hs256(service, tenant):
    user, _ = tenant.user("admin", password="correct horse battery")
    body = login(service, user.email, "correct horse battery").json()
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, service.settings.signing_key, algorithms=["HS256"])
    assert {"sub", "org", "role", "iat", "exp"} <= set(claims)
    assert claims["sub"] == str(user.id)
    assert claims["org"] == tenant.org_id
    assert claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == body["expires_in"]


# --- the auth matrix: every bad credential is a 401 with no data ------------------------

Headers = Callable[[Any, Any], dict[str, str]]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tampered(service: Any, user: Any) -> dict[str, str]:
    # A valid token whose payload is rewritten to claim more; the signature no longer fits.
    token = service.token_for(user)
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = b64({**claims, "role": "owner"})
    return _bearer(f"{header}.{forged}.{signature}")


def _alg_none(_service: Any, user: Any) -> dict[str, str]:
    return _bearer(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_of(user))}.")


def _hs512(service: Any, user: Any) -> str:
    # The right key, but an algorithm the service does not accept.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the key is short for HS512; that is not the point
        return jwt.encode(claims_of(user), service.settings.signing_key, algorithm="HS512")


MATRIX: dict[str, Headers] = {
    "no credentials": lambda s, u: {},
    "expired token": lambda s, u: _bearer(s.token_for(u, ttl=-30)),
    "tampered payload": _tampered,
    "alg none": _alg_none,
    "no exp claim": lambda s, u: _bearer(
        jwt.encode(claims_of(u, exp=None), s.settings.signing_key, algorithm="HS256")
    ),
    "wrong secret": lambda s, u: _bearer(
        jwt.encode(claims_of(u), "another-signing-key-that-is-long-enough", algorithm="HS256")
    ),
    "algorithm not allowed": lambda s, u: _bearer(_hs512(s, u)),
    "user that does not exist": lambda s, u: _bearer(
        jwt.encode(claims_of(u, sub="2000000000"), s.settings.signing_key, algorithm="HS256")
    ),
    "token of another organization's claim": lambda s, u: _bearer(
        jwt.encode(claims_of(u, org=u.organization_id + 1_000_000), s.settings.signing_key,
                   algorithm="HS256")
    ),
    "basic scheme": lambda s, u: {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    "bearer without token": lambda s, u: {"Authorization": "Bearer"},
    "token without scheme": lambda s, u: {"Authorization": s.token_for(u)},
    "garbage bearer": lambda s, u: _bearer("not-a-token-at-all"),
    "unknown api key": lambda s, u: {"X-Api-Key": "ibx_" + "x" * 43},
}


@pytest.fixture(scope="module")
def agent_with_data(service: Any) -> Any:
    """An agent of an organization that has a lead; the matrix only reads, so it is shared."""
    tenant = service.new_tenant()
    assert tenant.api.post("/api/leads", json={"name": SECRET_LEAD}).status_code == 201
    user, client = tenant.user("agent")
    assert SECRET_LEAD in client.get(PROTECTED).text  # properly authenticated, they see it
    return user


@pytest.mark.parametrize("case", list(MATRIX))
def test_a_bad_credential_is_refused_without_data(service, agent_with_data, case):
    r = service.client().get(PROTECTED, headers=MATRIX[case](service, agent_with_data))
    assert_unauthenticated(r)


def test_a_deactivated_users_token_stops_working_at_once(service, tenant):
    tenant.api.post("/api/leads", json={"name": SECRET_LEAD})
    user, client = tenant.user("agent")
    assert client.get(PROTECTED).status_code == 200

    r = tenant.api.post(f"/api/users/{user.id}/deactivate")
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    assert_unauthenticated(client.get(PROTECTED))
    assert_unauthenticated(client.get("/api/auth/me"))


def test_a_reactivated_user_signs_in_again_their_old_token_stays_revoked(service, tenant):
    user, client = tenant.user("agent", password="correct horse battery")
    tenant.api.patch(f"/api/users/{user.id}", json={"is_active": False})
    assert_unauthenticated(client.get(PROTECTED))
    tenant.api.patch(f"/api/users/{user.id}", json={"is_active": True})
    assert_unauthenticated(client.get(PROTECTED))
    token = login(service, user.email, "correct horse battery").json()["access_token"]
    assert service.client(token).get(PROTECTED).status_code == 200


# --- API keys ----------------------------------------------------------------------------


def test_an_api_key_works_as_a_bearer_token_and_as_x_api_key(service, tenant):
    tenant.api.post("/api/leads", json={"name": SECRET_LEAD})
    created = tenant.api.post("/api/api-keys", json={"name": "dashboard"}).json()
    key = created["key"]
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-Api-Key": key}):
        client = service.client()
        r = client.get(PROTECTED, headers=headers)
        assert r.status_code == 200, r.text
        assert [lead["name"] for lead in r.json()["data"]] == [SECRET_LEAD]
        me = client.get("/api/auth/me", headers=headers).json()
        assert me["user"] is None
        assert me["api_key_id"] == created["id"]
        assert me["role"] == "agent"
        assert me["organization"]["id"] == tenant.org_id


def test_a_revoked_api_key_is_refused(service, tenant):
    tenant.api.post("/api/leads", json={"name": SECRET_LEAD})
    created = tenant.api.post("/api/api-keys", json={"name": "dashboard"}).json()
    key = created["key"]
    assert service.client(key).get(PROTECTED).status_code == 200

    assert tenant.api.delete(f"/api/api-keys/{created['id']}").status_code == 204
    assert_unauthenticated(service.client(key).get(PROTECTED))
    assert_unauthenticated(service.client().get(PROTECTED, headers={"X-Api-Key": key}))


# --- roles -------------------------------------------------------------------------------

ADMIN_ONLY = [
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"email": "new@agent.example", "password": "long-enough"}),
    ("GET", "/api/channels", None),
    ("POST", "/api/channels", {"kind": "generic", "name": "Web form"}),
    ("GET", "/api/api-keys", None),
    ("POST", "/api/api-keys", {"name": "mine"}),
]


def test_an_agent_cannot_use_admin_endpoints(tenant):
    _, agent = tenant.user("agent")
    for method, path, body in ADMIN_ONLY:
        r = agent.request(method, path, json=body)
        assert r.status_code == 403, (method, path)
        assert_error(r, 403, "AUTHORIZATION_FAILED")
    # Nothing was made on the agent's behalf.
    assert [u["role"] for u in tenant.api.get("/api/users").json()["data"]] == ["owner", "agent"]
    assert tenant.api.get("/api/channels").json()["data"] == []
    assert tenant.api.get("/api/api-keys").json()["data"] == []


def test_an_agent_api_key_cannot_use_admin_endpoints(service, tenant):
    client = service.client(tenant.api_key("agent"))
    for path in ("/api/users", "/api/channels", "/api/api-keys"):
        assert_error(client.get(path), 403, "AUTHORIZATION_FAILED")


def test_an_admin_api_key_can(service, tenant):
    client = service.client(tenant.api_key("admin"))
    for path in ("/api/users", "/api/channels", "/api/api-keys"):
        assert client.get(path).status_code == 200


def test_only_an_owner_may_rename_the_organization(tenant):
    _, admin = tenant.user("admin")
    before = tenant.api.get("/api/organization").json()
    assert_error(admin.patch("/api/organization", json={"name": "Taken over"}),
                 403, "AUTHORIZATION_FAILED")
    assert tenant.api.get("/api/organization").json() == before

    r = tenant.api.patch("/api/organization", json={"name": "Renamed"})
    assert r.status_code == 200
    assert r.json()["name"] == "Renamed"
    assert admin.get("/api/organization").json()["name"] == "Renamed"


def test_a_demoted_users_old_token_loses_admin_rights_at_once(tenant):
    admin_user, admin = tenant.user("admin")
    assert admin.get("/api/users").status_code == 200

    r = tenant.api.patch(f"/api/users/{admin_user.id}", json={"role": "agent"})
    assert r.status_code == 200
    assert_error(admin.get("/api/users"), 403, "AUTHORIZATION_FAILED")
    assert admin.get("/api/auth/me").json()["role"] == "agent"
    # Still an agent: CRM data is open to them.
    assert admin.get(PROTECTED).status_code == 200
