"""API clients' sessions: a login hands out a refresh token; each refresh spends it and
hands out the next. A spent token presented again ends the whole session; signing out,
signing out everywhere, a password change or reset and a deactivation end sessions as
they end everything else."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, text, update
from sqlmodel import col

from inbox.models import RefreshFamily, RefreshToken
from inbox.services.refresh_tokens import digest, prune
from tests.inbox.api.test_console_sessions import console, cookie_of, sign_in

PASSWORD = "user-password-1"
PROTECTED = "/api/leads"


def login(service: Any, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = service.client().post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return dict(r.json())


def refresh(service: Any, token: str) -> httpx.Response:
    response: httpx.Response = service.client().post(
        "/api/auth/refresh", json={"refresh_token": token}
    )
    return response


def refreshed(service: Any, token: str) -> dict[str, Any]:
    r = refresh(service, token)
    assert r.status_code == 200, r.text
    return dict(r.json())


def refused(r: httpx.Response, reason: str) -> str:
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "AUTHENTICATION_FAILED"
    assert error["details"] == {"reason": reason}
    return str(error["message"])


def works(service: Any, access_token: str) -> bool:
    r = service.client(access_token).get(PROTECTED)
    assert r.status_code in (200, 401), r.text
    return bool(r.status_code == 200)


def family_of(session: dict[str, Any]) -> int:
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    return int(claims["fam"])


def move(service: Any, model: Any, where: Any, **values: Any) -> None:
    async def run() -> None:
        async with service.db.session() as session:
            connection = await session.connection()
            await connection.execute(update(model).where(where).values(**values))
            await session.commit()

    service.run(run())


def test_login_answers_a_refresh_token_that_each_refresh_exchanges_for_the_next(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    first = login(service, user.email)
    assert first["refresh_token"].startswith("ibr_")
    assert 30 * 86400 - 60 <= first["refresh_expires_in"] <= 30 * 86400
    assert first["session_expires_at"].endswith("Z")
    assert first["expires_in"] == 3600

    second = refreshed(service, first["refresh_token"])
    assert second["user"]["id"] == user.id
    assert second["session_expires_at"] == first["session_expires_at"]
    assert second["refresh_token"] != first["refresh_token"]
    assert works(service, second["access_token"])
    # The access token of before a refresh works on until it expires, as it would have.
    assert works(service, first["access_token"])
    third = refreshed(service, second["refresh_token"])
    assert works(service, third["access_token"])


def test_a_spent_refresh_token_presented_again_ends_the_whole_session(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    stolen = login(service, user.email)
    newest = refreshed(service, stolen["refresh_token"])
    elsewhere = login(service, user.email)

    message = refused(refresh(service, stolen["refresh_token"]), "reused")
    assert "sign in again" in message
    # Every token of the session stops: the newest refresh token and its access tokens.
    assert "used twice" in refused(refresh(service, newest["refresh_token"]), "revoked")
    for access in (stolen["access_token"], newest["access_token"]):
        refused(service.client(access).get(PROTECTED), "revoked")
    # Asked again, the spent token says the session is over, and ends nothing more.
    refused(refresh(service, stolen["refresh_token"]), "revoked")
    # The user's other session is another family.
    assert works(service, refreshed(service, elsewhere["refresh_token"])["access_token"])


# Two refreshes that both read the token unspent, then both try to spend it: only
# PostgreSQL lets them interleave so (SQLite runs one writer at a time).
@pytest.mark.backend("postgres")
def test_of_two_refreshes_racing_with_one_token_one_wins_and_the_session_ends(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = login(service, user.email)["refresh_token"]

    async def race() -> list[httpx.Response]:
        async with service.db.engine.connect() as holder, httpx.AsyncClient(
            base_url=service.url, timeout=30
        ) as api:
            # The token's row is held, so both refreshes read it and then wait to spend it.
            await holder.execute(
                select(RefreshToken.id)
                .where(col(RefreshToken.token_hash) == digest(token))
                .with_for_update()
            )
            body = {"refresh_token": token}
            both = [
                asyncio.ensure_future(api.post("/api/auth/refresh", json=body)) for _ in "ab"
            ]
            while await waiting_to_spend(service.db.engine) < 2:
                await asyncio.sleep(0.02)
            await holder.commit()
            return list(await asyncio.gather(*both))

    answers = service.run(race())
    assert sorted(r.status_code for r in answers) == [200, 401]
    won = next(r for r in answers if r.status_code == 200).json()
    lost = next(r for r in answers if r.status_code == 401)
    # The loser counts as a reuse: one client refreshing twice at once looks like two.
    refused(lost, "reused")
    refused(refresh(service, won["refresh_token"]), "revoked")
    assert not works(service, won["access_token"])


async def waiting_to_spend(engine: Any) -> int:
    # A transaction of its own each time: PostgreSQL shows one transaction the same
    # activity throughout.
    async with engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE refresh_tokens%'"
            )
        )
        return int(found.scalar_one())


def test_logging_out_ends_this_session_and_no_other(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    leaving = login(service, user.email)
    staying = login(service, user.email)

    assert service.client(leaving["access_token"]).post("/api/auth/logout").status_code == 204
    assert "signed out" in refused(refresh(service, leaving["refresh_token"]), "revoked")
    refused(service.client(leaving["access_token"]).get(PROTECTED), "revoked")
    assert works(service, staying["access_token"])
    assert works(service, refreshed(service, staying["refresh_token"])["access_token"])


def test_logging_out_the_console_ends_its_cookie_session(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    cookie = cookie_of(sign_in(service, user.email, PASSWORD))
    with console(service, cookie) as browser:
        r = browser.post("/api/auth/logout")
        assert r.status_code == 204, r.text
        assert "Max-Age=0" in r.headers["set-cookie"]
        refused(browser.get("/api/auth/me"), "revoked")


def test_logging_out_needs_a_session_that_can_end_alone(service, tenant):
    user, old_token = tenant.user("agent", password=PASSWORD)
    r = old_token.post("/api/auth/logout")
    assert r.status_code == 403, r.text
    assert "logout-all" in r.json()["error"]["message"]
    r = service.client(tenant.api_key()).post("/api/auth/logout")
    assert r.status_code == 403, r.text
    assert "delete the key" in r.json()["error"]["message"]
    refused(service.client().post("/api/auth/logout"), "missing")
    assert works(service, login(service, user.email)["access_token"])


def test_signing_out_everywhere_ends_every_session(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    one, two = login(service, user.email), login(service, user.email)
    assert service.client(one["access_token"]).post("/api/auth/logout-all").status_code == 204
    for session in (one, two):
        refused(refresh(service, session["refresh_token"]), "revoked")
        assert not works(service, session["access_token"])


def test_a_password_change_keeps_the_callers_session_and_ends_the_others(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    changing, other = login(service, user.email), login(service, user.email)
    body = {"current_password": PASSWORD, "new_password": "new-password-1"}
    r = service.client(changing["access_token"]).post("/api/auth/password", json=body)
    assert r.status_code == 200, r.text

    new_access = r.json()["access_token"]
    assert works(service, new_access)
    refused(refresh(service, other["refresh_token"]), "revoked")
    assert not works(service, other["access_token"])
    # The caller's refresh token goes on, and the new access token belongs to its session.
    assert works(service, refreshed(service, changing["refresh_token"])["access_token"])
    assert service.client(new_access).post("/api/auth/logout").status_code == 204
    assert not works(service, new_access)


def test_an_admin_password_reset_or_a_deactivation_ends_the_users_sessions(service, tenant):
    reset, _ = tenant.user("agent", password=PASSWORD)
    gone, _ = tenant.user("agent", password=PASSWORD)
    sessions = {user.id: login(service, user.email) for user in (reset, gone)}
    r = tenant.api.patch(f"/api/users/{reset.id}", json={"password": "new-password-1"})
    assert r.status_code == 200, r.text
    assert tenant.api.post(f"/api/users/{gone.id}/deactivate").status_code == 200
    for session in sessions.values():
        refused(refresh(service, session["refresh_token"]), "revoked")


def test_a_refresh_token_or_a_session_past_its_limit_is_refused_as_expired(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    lapsed, old = login(service, user.email), login(service, user.email)
    past = datetime.now(UTC) - timedelta(seconds=1)
    move(service, RefreshToken, col(RefreshToken.token_hash) == digest(lapsed["refresh_token"]),
         expires_at=past)
    assert "INBOX_REFRESH_TTL" in refused(refresh(service, lapsed["refresh_token"]), "expired")

    # A session ten minutes from its limit: no access token outlives it.
    soon = datetime.now(UTC) + timedelta(minutes=10)
    family = col(RefreshFamily.user_id) == user.id
    move(service, RefreshFamily, family, expires_at=soon)
    short = refreshed(service, old["refresh_token"])
    assert short["expires_in"] <= 600 and short["refresh_expires_in"] <= 600
    move(service, RefreshFamily, family, expires_at=past)
    assert "INBOX_REFRESH_MAX" in refused(refresh(service, short["refresh_token"]), "expired")
    refused(service.client(short["access_token"]).get(PROTECTED), "expired")


def test_sessions_over_for_a_day_are_pruned_with_their_tokens(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    over, recent, going = (login(service, user.email) for _ in range(3))
    now = datetime.now(UTC)
    for session, ended in ((over, timedelta(hours=25)), (recent, timedelta(hours=1))):
        family = col(RefreshFamily.id) == family_of(session)
        move(service, RefreshFamily, family, ended_at=now - ended, end_reason="logout")
    service.run(prune(service.db))
    refused(refresh(service, over["refresh_token"]), "invalid")
    assert "signed out" in refused(refresh(service, recent["refresh_token"]), "revoked")
    assert works(service, refreshed(service, going["refresh_token"])["access_token"])


def test_an_unknown_or_malformed_refresh_token_is_refused(service):
    refused(refresh(service, "ibr_" + "x" * 43), "invalid")
    refused(refresh(service, "not even close"), "invalid")
    for body in ({}, {"refresh_token": ""}, {"refresh_token": 42}, {"refresh_token": "x" * 201}):
        r = service.client().post("/api/auth/refresh", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_another_organizations_sessions_are_untouched(service, tenant, other_tenant):
    ours, _ = tenant.user("agent", password=PASSWORD)
    theirs, _ = other_tenant.user("agent", password=PASSWORD)
    mine, their_session = login(service, ours.email), login(service, theirs.email)
    assert service.client(mine["access_token"]).post("/api/auth/logout-all").status_code == 204
    answer = refreshed(service, their_session["refresh_token"])
    assert answer["user"]["id"] == theirs.id
    me = service.client(answer["access_token"]).get("/api/auth/me").json()
    assert me["organization"]["id"] == other_tenant.org_id
