"""Sockets an API client's session opens (with an access token of a login, or a ticket
minted with one): they stay open while the session refreshes, past the access token they
were opened with, and close (4401) on every process when the session ends: signed out, a
refresh token reused, or ended with the user's other sessions by a password change. (Two
processes: test_revocation_two_processes.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import update
from sqlmodel import col

from inbox.models import RefreshFamily, RefreshToken
from inbox.security import issue_token
from tests.inbox.conftest import SECRET
from tests.inbox.live.wsclient import closed_with, drain, live_of, on_loop, open_ws, ready, rest

PASSWORD = "user-password-1"


async def login(base: str, email: str) -> dict[str, Any]:
    async with rest(base) as api:
        r = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def refresh(base: str, token: str) -> httpx.Response:
    async with rest(base) as api:
        return await api.post("/api/auth/refresh", json={"refresh_token": token})


async def ticketed(base: str, access_token: str) -> Any:
    async with rest(base, access_token) as api:
        r = await api.post("/api/realtime/tickets")
    assert r.status_code == 200, r.text
    return await open_ws(base, query=f"ticket={r.json()['ticket']}")


def family_of(access_token: str) -> int:
    return int(jwt.decode(access_token, options={"verify_signature": False})["fam"])


# The same on either database, and it waits for a token to lapse: once is enough.
@pytest.mark.backend("sqlite")
async def test_a_socket_stays_open_past_its_access_token_while_the_session_refreshes(
    service, tenant
):
    user, _ = tenant.user("agent", password=PASSWORD)
    session = await login(service.url, user.email)
    # An access token of the same session that lapses in two seconds.
    brief = issue_token(
        user_id=user.id,
        organization_id=tenant.org_id,
        role="agent",
        key=SECRET,
        ttl_seconds=2,
        family_id=family_of(session["access_token"]),
    )
    async with await ticketed(service.url, brief) as by_ticket, await open_ws(
        service.url, brief
    ) as by_token:
        for ws in (by_ticket, by_token):
            await ready(ws)
        await asyncio.sleep(2.5)
        r = await refresh(service.url, session["refresh_token"])
        assert r.status_code == 200, r.text
        await on_loop(service.loop.loop, live_of(service).recheck())
        for ws in (by_ticket, by_token):
            await drain(ws)


async def test_a_reused_refresh_token_closes_every_socket_of_its_session_and_no_other(
    service, tenant
):
    user, _ = tenant.user("agent", password=PASSWORD)
    stolen, elsewhere = await login(service.url, user.email), await login(service.url, user.email)
    r = await refresh(service.url, stolen["refresh_token"])
    newest = r.json()
    async with (
        await ticketed(service.url, stolen["access_token"]) as first,
        await open_ws(service.url, newest["access_token"]) as after_refresh,
        await open_ws(service.url, elsewhere["access_token"]) as bystander,
    ):
        for ws in (first, after_refresh, bystander):
            await ready(ws)
        r = await refresh(service.url, stolen["refresh_token"])
        assert r.status_code == 401, r.text
        for ws in (first, after_refresh):
            assert await closed_with(ws) == 4401
        await drain(bystander)


async def test_logging_out_closes_the_sessions_sockets_and_a_password_change_the_others(
    service, tenant
):
    user, _ = tenant.user("agent", password=PASSWORD)
    leaving, changing, other = [await login(service.url, user.email) for _ in range(3)]
    async with (
        await open_ws(service.url, leaving["access_token"]) as doomed,
        await ticketed(service.url, changing["access_token"]) as own,
        await open_ws(service.url, other["access_token"]) as others,
    ):
        for ws in (doomed, own, others):
            await ready(ws)
        async with rest(service.url, leaving["access_token"]) as api:
            assert (await api.post("/api/auth/logout")).status_code == 204
        assert await closed_with(doomed) == 4401
        await drain(others)

        body = {"current_password": PASSWORD, "new_password": "new-password-1"}
        async with rest(service.url, changing["access_token"]) as api:
            assert (await api.post("/api/auth/password", json=body)).status_code == 200
        assert await closed_with(others) == 4401
        # The caller's session stands: neither the instruction nor the database's check
        # closes its socket.
        await on_loop(service.loop.loop, live_of(service).recheck())
        await drain(own)


async def test_a_session_ended_behind_the_services_back_closes_its_socket(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    session = await login(service.url, user.email)
    async with await open_ws(service.url, session["access_token"]) as ws:
        await ready(ws)

        async def end() -> None:
            async with service.db.session() as db_session:
                connection = await db_session.connection()
                await connection.execute(
                    update(RefreshFamily)
                    .where(col(RefreshFamily.id) == family_of(session["access_token"]))
                    .values(ended_at=datetime.now(UTC), end_reason="logout")
                )
                await db_session.commit()

        service.run(end())
        await on_loop(service.loop.loop, live_of(service).recheck())
        assert await closed_with(ws) == 4401


async def test_a_socket_closes_once_its_session_stops_refreshing(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    lapsing, refreshing = [await login(service.url, user.email) for _ in range(2)]
    async with (
        await open_ws(service.url, lapsing["access_token"]) as idle,
        await ticketed(service.url, lapsing["access_token"]) as idle_by_ticket,
        await open_ws(service.url, refreshing["access_token"]) as kept,
    ):
        for ws in (idle, idle_by_ticket, kept):
            await ready(ws)

        r = await refresh(service.url, refreshing["refresh_token"])
        assert r.status_code == 200, r.text

        # Longer ago than an access token lasts: one session's login, and the other's
        # login, after which it refreshed (just now).
        async def age() -> None:
            long_ago = datetime.now(UTC) - timedelta(seconds=service.settings.access_token_ttl + 5)
            async with service.db.session() as db_session:
                connection = await db_session.connection()
                for family, only_spent in ((lapsing, False), (refreshing, True)):
                    which = col(RefreshToken.family_id) == family_of(family["access_token"])
                    if only_spent:
                        which &= col(RefreshToken.used_at).is_not(None)
                    await connection.execute(
                        update(RefreshToken).where(which).values(created_at=long_ago)
                    )
                await db_session.commit()

        service.run(age())
        await on_loop(service.loop.loop, live_of(service).recheck())

        assert await closed_with(idle) == 4401
        assert await closed_with(idle_by_ticket) == 4401
        await drain(kept)
