"""The console's session cookie: signing in sets an HttpOnly, SameSite=Strict cookie that
REST accepts only on requests the console makes (its header, its origin); the session
slides while used, ends at its absolute limit, on sign-out, "sign out everywhere", a
password change elsewhere and a deactivation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlmodel import col, select

from inbox.models import ConsoleSession
from tests.inbox.live.wsclient import extra_service

PASSWORD = "user-password-1"
ME = "/api/auth/me"


def sign_in(service: Any, email: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{service.url}/api/auth/session",
        json={"email": email, "password": password},
        headers=headers,
        timeout=30,
    )


def cookie_of(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    value = r.headers["set-cookie"].split(";")[0]
    name, _, token = value.partition("=")
    assert name == "inbox_session" and token
    return token


def console(service: Any, token: str, **headers: str) -> Any:
    """A client sending what the console sends: the cookie and its header."""
    sent = {"Cookie": f"inbox_session={token}", "X-Inbox-Client": "console", **headers}
    api = service.client()
    api.headers.update(sent)
    return api


def signed_in(service: Any, email: str, password: str = PASSWORD) -> Any:
    return console(service, cookie_of(sign_in(service, email, password)))


def attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")[1:]]
    return {k.lower(): v for k, _, v in (p.partition("=") for p in parts)}


def latest_session(service: Any, user_id: int) -> ConsoleSession:
    async def read() -> ConsoleSession:
        async with service.db.session() as session:
            rows = await session.exec(
                select(ConsoleSession)
                .where(col(ConsoleSession.user_id) == user_id)
                .order_by(col(ConsoleSession.id).desc())
            )
            return rows.first()

    found: ConsoleSession = service.run(read())
    return found


def later(service: Any, user_id: int, by: timedelta, **values: Any) -> None:
    """Move the clock of the user's newest session on by ``by`` (its stored times move
    back), and let the server forget what it remembered of it, as it does within seconds."""

    async def move() -> None:
        async with service.db.session() as session:
            row = (
                await session.exec(
                    select(ConsoleSession)
                    .where(col(ConsoleSession.user_id) == user_id)
                    .order_by(col(ConsoleSession.id).desc())
                )
            ).first()
            assert row is not None
            row.created_at -= by
            row.last_used_at -= by
            row.expires_at -= by
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)
            await session.commit()

    async def forget() -> None:
        service.app.state.inbox.auth.forget_owner(user_id)

    service.run(move())
    service.run(forget())


def refused(r: httpx.Response, reason: str) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["details"] == {"reason": reason}
    return dict(error)


def test_signing_in_sets_an_httponly_strict_cookie_and_answers_who_signed_in(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    r = sign_in(service, user.email.upper())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == user.id
    assert body["organization"]["id"] == tenant.org_id
    assert body["role"] == "agent"
    signed_at = datetime.now(UTC)
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=6, hours=23) < expires_at - signed_at <= timedelta(days=7)
    assert "access_token" not in body
    cookie = attributes(r.headers["set-cookie"])
    assert cookie["path"] == "/"
    assert cookie["samesite"] == "Strict"
    assert "httponly" in cookie
    assert "secure" not in cookie  # served over plain http
    assert cookie["max-age"] == str(7 * 24 * 3600)


def test_the_cookie_with_the_console_header_reaches_the_api(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    api = signed_in(service, user.email)
    r = api.get(ME)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == user.id
    assert r.json()["organization"]["id"] == tenant.org_id
    assert r.json()["api_key_id"] is None
    assert latest_session(service, user.id).user_agent is not None


def test_the_cookie_without_the_console_header_is_refused(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = cookie_of(sign_in(service, user.email))
    bare = service.client()
    bare.headers["Cookie"] = f"inbox_session={token}"
    error = refused(bare.get(ME), "missing")
    assert "X-Inbox-Client: console" in error["message"]


def test_the_cookie_from_another_site_is_refused_and_from_ours_accepted(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = cookie_of(sign_in(service, user.email))
    r = console(service, token, Origin="https://evil.example").post("/api/auth/logout-all")
    assert r.status_code == 403, r.text
    assert "Cross-site" in r.json()["error"]["message"]
    assert console(service, token).get(ME).status_code == 200  # nothing ended
    ours = console(service, token, Origin=service.url)
    assert ours.get(ME).status_code == 200
    r = sign_in(service, user.email, Origin="https://evil.example")
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_a_wrong_password_or_an_inactive_user_signs_nobody_in(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    r = sign_in(service, user.email, "not-the-password")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["message"] == "Wrong email or password"
    assert "set-cookie" not in r.headers
    assert sign_in(service, "nobody@nowhere.example").status_code == 401
    assert tenant.api.post(f"/api/users/{user.id}/deactivate").status_code == 200
    r = sign_in(service, user.email)
    assert r.status_code == 401 and "set-cookie" not in r.headers


def test_a_deactivated_users_session_is_refused(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    api = signed_in(service, user.email)
    assert api.get(ME).status_code == 200
    assert tenant.api.post(f"/api/users/{user.id}/deactivate").status_code == 200
    refused(api.get(ME), "revoked")
    r = tenant.api.patch(f"/api/users/{user.id}", json={"is_active": True})
    assert r.status_code == 200, r.text
    refused(api.get(ME), "revoked")  # the session ended with the deactivation


def test_a_token_in_the_headers_wins_over_the_cookie(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = cookie_of(sign_in(service, user.email))
    r = console(service, token, Authorization=f"Bearer {service.token_for(tenant.owner)}").get(ME)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == tenant.owner.id


def test_signing_out_ends_the_session_and_clears_the_cookie(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    api, other = signed_in(service, user.email), signed_in(service, user.email)
    r = api.delete("/api/auth/session")
    assert r.status_code == 204, r.text
    cleared = attributes(r.headers["set-cookie"])
    assert r.headers["set-cookie"].startswith("inbox_session=;")
    assert cleared["max-age"] == "0"
    error = refused(api.get(ME), "revoked")
    assert "Signed out" in error["message"]
    assert other.get(ME).status_code == 200  # another browser stays signed in
    assert latest_session(service, user.id).ended_at is None


def test_only_a_console_session_is_signed_out_here(service, tenant):
    r = tenant.api.delete("/api/auth/session")
    assert r.status_code == 403, r.text
    assert "logout-all" in r.json()["error"]["message"]
    refused(service.client().delete("/api/auth/session"), "missing")


def test_a_session_in_use_slides_past_its_first_idle_deadline(database_url, loop, tenant):
    with extra_service(database_url, loop, session_idle=3600) as short:
        user, _ = tenant.user("agent", password=PASSWORD)
        api = signed_in(short, user.email)
        idle_one = signed_in(short, user.email)
        later(short, user.id, timedelta(minutes=50))
        assert api.get(ME).status_code == 200  # used: it slides on
        later(short, user.id, timedelta(minutes=50))  # 100 minutes after signing in
        assert api.get(ME).status_code == 200
        # Never used since signing in, 100 minutes ago.
        error = refused(idle_one.get(ME), "expired")
        assert "not used" in error["message"]


def test_a_session_left_unused_expires(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    api = signed_in(service, user.email)
    assert api.get(ME).status_code == 200
    later(service, user.id, timedelta(hours=11))
    assert api.get(ME).status_code == 200
    later(service, user.id, timedelta(hours=12, minutes=1))
    refused(api.get(ME), "expired")


def test_a_session_ends_at_its_absolute_limit_however_used(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    api = signed_in(service, user.email)
    assert api.get(ME).status_code == 200
    later(service, user.id, timedelta(0), expires_at=datetime.now(UTC) - timedelta(seconds=1))
    error = refused(api.get(ME), "expired")
    assert "maximum age" in error["message"]


def test_signing_out_everywhere_ends_every_console_session(service, tenant):
    user, token_api = tenant.user("agent", password=PASSWORD)
    api, other = signed_in(service, user.email), signed_in(service, user.email)
    assert api.post("/api/auth/logout-all").status_code == 204
    refused(api.get(ME), "revoked")
    refused(other.get(ME), "revoked")
    refused(token_api.get(ME), "revoked")
    again = signed_in(service, user.email)
    login = {"email": user.email, "password": PASSWORD}
    token = service.client().post("/api/auth/login", json=login).json()["access_token"]
    assert service.client(token).post("/api/auth/logout-all").status_code == 204
    refused(again.get(ME), "revoked")


def test_a_password_change_keeps_the_callers_session_and_ends_the_others(service, tenant):
    user, token_api = tenant.user("agent", password=PASSWORD)
    api, other = signed_in(service, user.email), signed_in(service, user.email)
    body = {"current_password": PASSWORD, "new_password": "new-password-1"}
    r = api.post("/api/auth/password", json=body)
    assert r.status_code == 200, r.text
    assert api.get(ME).status_code == 200
    refused(other.get(ME), "revoked")
    refused(token_api.get(ME), "revoked")
    assert sign_in(service, user.email).status_code == 401
    assert sign_in(service, user.email, "new-password-1").status_code == 200


def test_an_admin_password_reset_ends_the_users_console_sessions(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    api = signed_in(service, user.email)
    r = tenant.api.patch(f"/api/users/{user.id}", json={"password": "new-password-1"})
    assert r.status_code == 200, r.text
    refused(api.get(ME), "revoked")


def test_a_session_reads_its_own_organization_only(service, tenant, other_tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    api = signed_in(service, user.email)
    mine, theirs = tenant.conversation(), other_tenant.conversation()
    assert api.get(f"/api/conversations/{mine.id}").status_code == 200
    r = api.get(f"/api/conversations/{theirs.id}")
    assert r.status_code == 404, r.text
    assert api.get(f"/api/contacts/{theirs.contact_id}").status_code == 404


def test_behind_https_the_cookie_is_secure_and_the_public_origin_is_ours(
    database_url, loop, tenant
):
    public = "https://inbox.example.com"
    with extra_service(database_url, loop, public_url=public) as behind_tls:
        user, _ = tenant.user("agent", password=PASSWORD)
        r = sign_in(behind_tls, user.email, Origin=public)
        assert "secure" in attributes(r.headers["set-cookie"])
        api = console(behind_tls, cookie_of(r), Origin=public)
        assert api.get(ME).status_code == 200
        r = api.delete("/api/auth/session")
        assert r.status_code == 204
        assert "secure" in attributes(r.headers["set-cookie"])
