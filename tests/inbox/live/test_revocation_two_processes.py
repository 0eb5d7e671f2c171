"""Two ``inbox serve`` processes sharing PostgreSQL and Redis: a credential revoked
through one closes the sockets it opened on the other (4401) and is refused there; a
ticket opens one socket across both; with Redis down, revocations still arrive within
seconds, from the database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from servers import RedisServer, create_database, drop_database, free_port

from inbox.db import Database
from inbox.settings import async_database_url
from tests.inbox.conftest import HIGH_RATE_LIMITS, SECRET, Service, make_settings
from tests.inbox.live.wsclient import closed_with, drain, open_ws, ready, refusal, rest

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

INBOX = str(Path(sys.executable).with_name("inbox"))
PASSWORD = "user-password-1"


@dataclass
class Cluster:
    a: Service
    b: Service
    redis: RedisServer


@pytest.fixture(scope="module")
def cluster(postgres_server_url: str, loop: Any) -> Iterator[Cluster]:
    url, name = create_database(postgres_server_url)
    redis = RedisServer()
    redis.start()
    logs = Path(tempfile.mkdtemp(prefix="inbox-revocation-"))
    env = {
        **os.environ,
        "INBOX_DATABASE_URL": url,
        "INBOX_REDIS_URL": redis.url,
        "INBOX_SECRET_KEY": SECRET,
        # Production requires one: channel secrets are encrypted with it.
        "INBOX_SECRETS_KEY": Fernet.generate_key().decode(),
        "INBOX_LOG_LEVEL": "warning",
        "INBOX_DRAIN_SECONDS": "0",
        # The tests sign in far more often than the default budget of 10 a minute.
        "INBOX_RATE_LIMITS": HIGH_RATE_LIMITS,
    }
    subprocess.run([INBOX, "migrate"], env=env, check=True, capture_output=True)
    procs: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for label in "AB":
            port = free_port()
            log = logs / f"{label}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen([INBOX, "serve", "--port", str(port)], env=env,
                                        stdout=out, stderr=subprocess.STDOUT)
            procs.append((proc, f"http://127.0.0.1:{port}", log))
        for proc, base, log in procs:
            _wait_until_ready(proc, base, log)
        db = Database(async_database_url(url))
        settings = make_settings(async_database_url(url), redis_url=redis.url)
        a, b = (Service(base, "ws" + base.removeprefix("http"), settings, db, loop, db.dialect)
                for _, base, _ in procs)
        yield Cluster(a, b, redis)
        for service in (a, b):
            for client in service.clients:
                client.close()
        loop.run(db.dispose())
    finally:
        for proc, _, _ in procs:
            proc.terminate()
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        redis.close()
        drop_database(postgres_server_url, name)


def _wait_until_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"inbox serve exited: {log.read_text()}"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"inbox serve never got ready: {log.read_text()}"
        time.sleep(0.1)


async def _login(base: str, email: str) -> str:
    async with rest(base) as api:
        r = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def _refused_as_revoked(base: str, credential: str) -> None:
    async with rest(base, credential) as api:
        r = await api.get("/api/leads")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["details"] == {"reason": "revoked"}


async def test_a_password_reset_through_one_process_closes_the_socket_on_the_other(cluster):
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    user, _ = tenant.user("agent", password=PASSWORD)
    token = await _login(b.url, user.email)
    async with await open_ws(b.url, token) as on_b, rest(a.url, a.token_for(tenant.owner)) as admin:
        await ready(on_b)
        r = await admin.patch(f"/api/users/{user.id}", json={"password": "new-password-1"})
        assert r.status_code == 200, r.text
        assert await closed_with(on_b) == 4401
    await _refused_as_revoked(b.url, token)


async def test_signing_out_everywhere_through_one_process_closes_the_other_s_sockets(cluster):
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    user, _ = tenant.user("agent", password=PASSWORD)
    token = await _login(a.url, user.email)
    async with rest(a.url, token) as api:
        issued = (await api.post("/api/realtime/tickets")).json()["ticket"]
    async with (
        await open_ws(a.url, token) as on_a,
        await open_ws(b.url, token) as on_b,
        await open_ws(b.url, query=f"ticket={issued}") as ticketed_on_b,
    ):
        for ws in (on_a, on_b, ticketed_on_b):
            await ready(ws)
        async with rest(b.url, token) as api:
            assert (await api.post("/api/auth/logout-all")).status_code == 204
        for ws in (on_a, on_b, ticketed_on_b):
            assert await closed_with(ws) == 4401
    fresh = await _login(b.url, user.email)
    async with await open_ws(a.url, fresh) as again:
        await ready(again)
        await drain(again)


async def test_a_deactivated_owner_s_key_stops_on_the_other_process_until_transferred(cluster):
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    admin_user, admin = tenant.user("admin")
    created = admin.post("/api/api-keys", json={"name": "Dashboard"}).json()
    key = created["key"]
    async with (
        await open_ws(b.url, key) as on_b,
        rest(b.url, key) as key_on_b,
        rest(a.url, a.token_for(tenant.owner)) as owner_on_a,
    ):
        await ready(on_b)
        assert (await key_on_b.get("/api/leads")).status_code == 200  # B remembers the key
        r = await owner_on_a.post(f"/api/users/{admin_user.id}/deactivate")
        assert r.status_code == 200, r.text
        assert await closed_with(on_b) == 4401
        await _refused_as_revoked(b.url, key)

        r = await owner_on_a.patch(f"/api/api-keys/{created['id']}",
                                   json={"owner_id": tenant.owner.id})
        assert r.status_code == 200, r.text
        assert (await key_on_b.get("/api/leads")).status_code == 200


async def test_a_ticket_opens_one_socket_across_both_processes(cluster):
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    async with rest(a.url, a.token_for(tenant.owner)) as api:
        issued = (await api.post("/api/realtime/tickets")).json()["ticket"]
    async with await open_ws(b.url, query=f"ticket={issued}") as on_b:
        await ready(on_b)
        status, error = await refusal(a.url, query=f"ticket={issued}")
        assert (status, error["details"]) == (403, {"reason": "invalid"})
        assert "used" in error["message"]


async def test_a_reused_refresh_token_closes_its_sessions_sockets_on_both_processes(cluster):
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    user, _ = tenant.user("agent", password=PASSWORD)
    async with rest(a.url) as api:
        r = await api.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        session = r.json()
    async with rest(b.url, session["access_token"]) as api:
        issued = (await api.post("/api/realtime/tickets")).json()["ticket"]
    async with (
        await open_ws(a.url, session["access_token"]) as on_a,
        await open_ws(b.url, query=f"ticket={issued}") as on_b,
        rest(a.url) as via_a,
        rest(b.url) as via_b,
    ):
        for ws in (on_a, on_b):
            await ready(ws)
        spent = {"refresh_token": session["refresh_token"]}
        assert (await via_b.post("/api/auth/refresh", json=spent)).status_code == 200
        for ws in (on_a, on_b):  # a refresh ends nothing
            await drain(ws)
        r = await via_a.post("/api/auth/refresh", json=spent)
        assert (r.status_code, r.json()["error"]["details"]) == (401, {"reason": "reused"})
        for ws in (on_a, on_b):
            assert await closed_with(ws) == 4401


async def test_with_redis_down_a_revocation_still_reaches_the_other_process(cluster):
    a, b = cluster.a, cluster.b
    tenant = a.new_tenant()
    user, _ = tenant.user("agent", password=PASSWORD)
    token = await _login(b.url, user.email)
    async with await open_ws(b.url, token) as on_b, rest(a.url, a.token_for(tenant.owner)) as admin:
        await ready(on_b)
        cluster.redis.stop()
        try:
            deadline = time.monotonic() + 30
            while (await admin.get("/readyz")).status_code != 503:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            r = await admin.post(f"/api/users/{user.id}/logout-all")
            assert r.status_code == 204, r.text
            # Nothing crosses the broker now: B finds it in the database.
            assert await closed_with(on_b, timeout=30) == 4401
        finally:
            cluster.redis.start()
