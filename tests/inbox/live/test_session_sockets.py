"""Sockets the console opens with a ticket from its session cookie: they close (4401) when
that session is signed out, ended with every session of the user or reaches its
absolute limit, and stay open while the session merely slides. Across two processes,
over Redis and, with Redis down, from the database within seconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from inbox.models import ConsoleSession
from tests.inbox.api.test_console_sessions import cookie_of, later, latest_session, sign_in
from tests.inbox.live.test_revocation_two_processes import cluster  # noqa: F401 (fixture)
from tests.inbox.live.wsclient import (
    closed_with,
    drain,
    extra_service,
    live_of,
    on_loop,
    open_ws,
    ready,
)

PASSWORD = "user-password-1"


def console_rest(base: str, token: str) -> httpx.AsyncClient:
    """What the console sends: its cookie and its header."""
    headers = {"Cookie": f"inbox_session={token}", "X-Inbox-Client": "console"}
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=30)


async def ticket(base: str, token: str) -> dict[str, Any]:
    async with console_rest(base, token) as api:
        r = await api.post("/api/realtime/tickets")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def open_console_socket(base: str, token: str) -> Any:
    issued = await ticket(base, token)
    return await open_ws(base, query=f"ticket={issued['ticket']}")


async def test_signing_out_closes_the_sessions_sockets_and_no_others(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    leaving = cookie_of(sign_in(service, user.email))
    staying = cookie_of(sign_in(service, user.email))
    async with (
        await open_console_socket(service.url, leaving) as doomed,
        await open_console_socket(service.url, staying) as bystander,
    ):
        for ws in (doomed, bystander):
            await ready(ws)
        async with console_rest(service.url, leaving) as api:
            assert (await api.delete("/api/auth/session")).status_code == 204
            r = await api.post("/api/realtime/tickets")
            assert r.status_code == 401, r.text
        assert await closed_with(doomed) == 4401
        await drain(bystander)


async def test_signing_out_everywhere_closes_every_console_socket(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    first = cookie_of(sign_in(service, user.email))
    second = cookie_of(sign_in(service, user.email))
    async with (
        await open_console_socket(service.url, first) as one,
        await open_console_socket(service.url, second) as two,
    ):
        for ws in (one, two):
            await ready(ws)
        async with console_rest(service.url, first) as api:
            assert (await api.post("/api/auth/logout-all")).status_code == 204
        for ws in (one, two):
            assert await closed_with(ws) == 4401


async def test_a_password_change_closes_the_other_sessions_sockets_not_the_callers(
    service, tenant
):
    user, _ = tenant.user("agent", password=PASSWORD)
    changing = cookie_of(sign_in(service, user.email))
    elsewhere = cookie_of(sign_in(service, user.email))
    async with (
        await open_console_socket(service.url, changing) as own,
        await open_console_socket(service.url, elsewhere) as other,
    ):
        for ws in (own, other):
            await ready(ws)
        body = {"current_password": PASSWORD, "new_password": "new-password-1"}
        async with console_rest(service.url, changing) as api:
            assert (await api.post("/api/auth/password", json=body)).status_code == 200
        assert await closed_with(other) == 4401
        # Nor does the check of the database close it: the session stands.
        await on_loop(service.loop.loop, live_of(service).recheck())
        await drain(own)
        # And it opens sockets again.
        async with await open_console_socket(service.url, changing) as again:
            await ready(again)


async def test_a_session_ended_behind_the_services_back_closes_its_socket(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = cookie_of(sign_in(service, user.email))
    async with await open_console_socket(service.url, token) as ws:
        await ready(ws)
        # What the service checks every few seconds, done now: the session stands.
        await on_loop(service.loop.loop, live_of(service).recheck())
        await drain(ws)

        async def end() -> None:
            async with service.db.session() as session:
                connection = await session.connection()
                await connection.execute(
                    update(ConsoleSession)
                    .where(col(ConsoleSession.user_id) == user.id)
                    .values(ended_at=datetime.now(UTC))
                )
                await session.commit()

        service.run(end())
        await on_loop(service.loop.loop, live_of(service).recheck())
        assert await closed_with(ws) == 4401


async def test_a_ticket_and_its_socket_last_no_longer_than_the_session(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    token = cookie_of(sign_in(service, user.email))
    later(service, user.id, timedelta(0), expires_at=datetime.now(UTC) + timedelta(seconds=3))
    issued = await ticket(service.url, token)
    assert issued["expires_in"] <= 3
    async with await open_ws(service.url, query=f"ticket={issued['ticket']}") as ws:
        await ready(ws)
        assert await closed_with(ws) == 4401
    assert latest_session(service, user.id).ended_at is None  # it lapsed, nobody ended it


async def test_a_socket_stays_open_while_its_session_slides(database_url, loop, tenant):
    # An idle timeout of two seconds, so that it is crossed while the console is in use.
    with extra_service(database_url, loop, session_idle=2) as short:
        user, _ = tenant.user("agent", password=PASSWORD)
        token = cookie_of(sign_in(short, user.email))
        async with (
            await open_console_socket(short.url, token) as ws,
            console_rest(short.url, token) as api,
        ):
            await ready(ws)
            for _ in range(8):
                await asyncio.sleep(0.5)
                assert (await api.get("/api/auth/me")).status_code == 200
            await drain(ws)


async def test_sessions_over_for_a_day_are_pruned_and_the_others_kept(service, tenant):
    user, _ = tenant.user("agent", password=PASSWORD)
    now = datetime.now(UTC)
    moves: list[tuple[timedelta, dict[str, Any]]] = [
        (timedelta(0), {"ended_at": now - timedelta(hours=25)}),  # signed out yesterday
        (timedelta(days=8, hours=1), {}),  # reached its absolute limit yesterday
        (timedelta(hours=37), {}),  # left unused for over a day past its idle timeout
        (timedelta(hours=1), {}),  # in use
        (timedelta(0), {"ended_at": now - timedelta(hours=1)}),  # signed out an hour ago
    ]
    ids = []
    for by, values in moves:
        cookie_of(sign_in(service, user.email))
        later(service, user.id, by, **values)
        ids.append(latest_session(service, user.id).id)
    await on_loop(service.loop.loop, live_of(service).handshake.used_tickets.prune())

    async def left() -> list[int]:
        async with service.db.session() as session:
            rows = await session.exec(
                select(ConsoleSession.id).where(col(ConsoleSession.user_id) == user.id)
            )
            return sorted(i for i in rows if i is not None)

    assert service.run(left()) == ids[3:]


@pytest.mark.redis
@pytest.mark.postgres
async def test_signing_out_through_one_process_closes_the_socket_on_the_other(cluster):  # noqa: F811
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    user, _ = tenant.user("agent", password=PASSWORD)
    token = cookie_of(sign_in(a, user.email))
    async with await open_console_socket(b.url, token) as on_b:  # B has read the session
        await ready(on_b)
        async with console_rest(a.url, token) as api:
            assert (await api.delete("/api/auth/session")).status_code == 204
        assert await closed_with(on_b) == 4401
    async with console_rest(b.url, token) as api:
        r = await api.get("/api/auth/me")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["details"] == {"reason": "revoked"}


@pytest.mark.redis
@pytest.mark.postgres
async def test_with_redis_down_signing_out_still_reaches_the_other_process(cluster):  # noqa: F811
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    user, _ = tenant.user("agent", password=PASSWORD)
    token = cookie_of(sign_in(a, user.email))
    async with await open_console_socket(b.url, token) as on_b, console_rest(a.url, token) as api:
        await ready(on_b)
        cluster.redis.stop()
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while (await api.get("/readyz")).status_code != 503:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
            assert (await api.delete("/api/auth/session")).status_code == 204
            # Nothing crosses the broker now: B finds it in the database.
            assert await closed_with(on_b, timeout=30) == 4401
        finally:
            cluster.redis.start()


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_password_change_through_one_process_spares_the_callers_socket_on_the_other(
    cluster,  # noqa: F811
):
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    user, _ = tenant.user("agent", password=PASSWORD)
    changing = cookie_of(sign_in(a, user.email))
    elsewhere = cookie_of(sign_in(a, user.email))
    async with (
        await open_console_socket(b.url, changing) as own,
        await open_console_socket(b.url, elsewhere) as other,
    ):
        for ws in (own, other):
            await ready(ws)
        body = {"current_password": PASSWORD, "new_password": "new-password-1"}
        async with console_rest(a.url, changing) as api:
            assert (await api.post("/api/auth/password", json=body)).status_code == 200
        assert await closed_with(other) == 4401
        await drain(own)
