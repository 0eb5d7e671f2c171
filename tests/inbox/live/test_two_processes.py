"""Two ``inbox serve`` processes sharing PostgreSQL and Redis: what happens through one
reaches the WebSockets held by the other, in order and once; presence spans both."""

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
from tests.inbox.conftest import SECRET, Service, make_settings
from tests.inbox.live.wsclient import (
    closed_with,
    drain,
    events_until,
    frames_for,
    frames_until,
    ids_of,
    open_ws,
    ready,
    rest,
    stored,
)
from tests.inbox.platforms import events_of, meta_headers, whatsapp_channel, whatsapp_text

# Both processes encrypt channel secrets with it (production requires one).
SECRETS_KEY = Fernet.generate_key().decode()

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

INBOX = str(Path(sys.executable).with_name("inbox"))


@dataclass
class Process:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def processes(postgres_server_url: str, loop: Any, platform: Any) -> Iterator[list[Service]]:
    """Processes A and B, each seen as a Service (REST base URL and the shared database)."""
    url, name = create_database(postgres_server_url)
    # A Redis of their own: channels and presence keys are per deployment, not per test.
    redis = RedisServer()
    redis.start()
    logs = Path(tempfile.mkdtemp(prefix="inbox-two-processes-"))
    env = {
        **os.environ,
        "INBOX_DATABASE_URL": url,
        "INBOX_REDIS_URL": redis.url,
        "INBOX_SECRET_KEY": SECRET,
        "INBOX_SECRETS_KEY": SECRETS_KEY,
        "INBOX_GRAPH_API_URL": platform.base_url,
        "INBOX_LOG_LEVEL": "warning",
        "INBOX_DRAIN_SECONDS": "0",
        # Refilled slowly enough that no test sees a sign-in come back.
        "INBOX_RATE_LIMITS": "auth=10/hour",
    }
    subprocess.run([INBOX, "migrate"], env=env, check=True, capture_output=True)
    started: list[Process] = []
    try:
        for label in "AB":
            port = free_port()
            log = logs / f"{label}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [INBOX, "serve", "--port", str(port)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append(Process(f"http://127.0.0.1:{port}", proc, log))
        for process in started:
            _wait_until_ready(process)
        db = Database(async_database_url(url))
        settings = make_settings(async_database_url(url), redis_url=redis.url)
        services = [
            Service(p.url, "ws" + p.url.removeprefix("http"), settings, db, loop, db.dialect)
            for p in started
        ]
        yield services
        for service in services:
            for client in service.clients:
                client.close()
        loop.run(db.dispose())
    finally:
        for process in started:
            process.proc.terminate()
        for process in started:
            try:
                process.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.proc.kill()
                process.proc.wait()
        redis.close()
        drop_database(postgres_server_url, name)


def _wait_until_ready(process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.proc.poll() is not None:
            raise AssertionError(f"inbox serve exited: {process.log.read_text()}")
        try:
            if httpx.get(f"{process.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"inbox serve never got ready: {process.log.read_text()}")
        time.sleep(0.1)


async def test_what_happens_through_one_process_reaches_a_socket_on_the_other(processes):
    a, b = processes
    tenant = a.new_tenant()
    channel = whatsapp_channel(tenant)
    token = a.token_for(tenant.owner)
    async with await open_ws(b.url, token) as on_b, rest(a.url, token) as via_a:
        await ready(on_b)
        leads = []
        for n in range(5):
            leads.append((await via_a.post("/api/leads", json={"name": f"Lead {n}"})).json())
        contact = (await via_a.post("/api/contacts", json={"name": "Cat"})).json()
        for n in range(3):
            body = whatsapp_text(channel, f"wamid.two-{n}", f"message {n}")
            r = await via_a.post(
                "/webhooks/whatsapp", content=body, headers=meta_headers(body, channel.secret)
            )
            assert r.status_code == 200, r.text
        stored_events = events_of(a, tenant.org_id)
        last = stored_events[-1].id
        frames = await events_until(on_b, last)
        frames += await drain(on_b)
    events = stored(frames)
    assert ids_of(events) == list(range(1, last + 1))
    assert [(e["type"], e["data"]) for e in events] == [(e.type, e.data) for e in stored_events]
    assert [e["data"] for e in events[:6]] == [*leads, contact]
    # First message: a new contact, lead and conversation; then two more messages.
    assert [e["type"] for e in events[6:]] == [
        "lead.created",
        "contact.created",
        "conversation.created",
        "message.received",
        "conversation.updated",
        "message.received",
        "conversation.updated",
        "message.received",
        "conversation.updated",
    ]


async def test_concurrent_writers_on_both_processes_are_seen_once_in_order_everywhere(
    processes,
):
    a, b = processes
    tenant = a.new_tenant()
    token = a.token_for(tenant.owner)
    per_process = 100

    async def write(api: Any, label: str) -> None:
        lanes = asyncio.Semaphore(4)

        async def one(n: int) -> None:
            async with lanes:
                r = await api.post("/api/leads", json={"name": f"{label} {n}"})
                assert r.status_code == 201, r.text

        await asyncio.gather(*(one(n) for n in range(per_process)))

    async with (
        await open_ws(a.url, token) as on_a,
        await open_ws(b.url, token) as on_b,
        await open_ws(b.url, tenant.api_key()) as also_on_b,
        rest(a.url, token) as via_a,
        rest(b.url, token) as via_b,
    ):
        clients = [on_a, on_b, also_on_b]
        for ws in clients:
            await ready(ws)
        total = 2 * per_process

        async def watch(ws: Any) -> list[dict[str, Any]]:
            return await events_until(ws, total, timeout=60)

        _, _, *seen = await asyncio.gather(
            write(via_a, "A"), write(via_b, "B"), *(watch(ws) for ws in clients)
        )
        for ws, frames in zip(clients, seen, strict=True):
            frames += await drain(ws)
            got = ids_of(frames)
            misplaced = [(at, id) for at, id in enumerate(got, 1) if id != at]
            assert got == list(range(1, total + 1)), misplaced
    names = sorted(e.data["name"] for e in events_of(a, tenant.org_id))
    assert names == sorted(
        [f"A {n}" for n in range(per_process)] + [f"B {n}" for n in range(per_process)]
    )


async def test_presence_spans_both_processes(processes):
    a, b = processes
    tenant = a.new_tenant()
    agent, _ = tenant.user("agent")
    token = a.token_for(agent)

    def about_agent(frames: list[dict[str, Any]]) -> list[str]:
        return [
            f["data"]["status"]
            for f in frames
            if f["type"] == "agent.status" and f["data"]["user_id"] == agent.id
        ]

    async with (
        await open_ws(a.url, tenant.api_key()) as observer_a,
        await open_ws(b.url, tenant.api_key()) as observer_b,
        rest(b.url, a.token_for(tenant.owner)) as via_b,
    ):
        await ready(observer_a)
        await ready(observer_b)
        on_a = await open_ws(a.url, token)
        await ready(on_a)
        on_b = await open_ws(b.url, token)
        await ready(on_b)
        await drain(on_b)
        for observer in (observer_a, observer_b):
            frames = await frames_until(observer, lambda f: f["type"] == "agent.status")
            assert about_agent(frames) == ["online"]
        assert (await via_b.get("/api/analytics/live")).json()["agents_online"] == 1

        await on_a.close()
        # Still connected through B: nobody hears "offline" (give a wrong one time to show).
        for observer in (observer_a, observer_b):
            assert about_agent(await frames_for(observer, 0.5)) == []
        assert (await via_b.get("/api/analytics/live")).json()["agents_online"] == 1

        await on_b.close()
        for observer in (observer_a, observer_b):
            frames = await frames_until(observer, lambda f: f["type"] == "agent.status")
            assert about_agent(frames) == ["offline"]
        assert (await via_b.get("/api/analytics/live")).json()["agents_online"] == 0


async def test_a_key_deleted_through_one_process_is_refused_by_the_other_at_once(processes):
    a, b = processes
    tenant = a.new_tenant()
    async with rest(a.url, a.token_for(tenant.owner)) as via_a:
        created = (await via_a.post("/api/api-keys", json={"name": "dashboard"})).json()
        key = created["key"]
        async with await open_ws(b.url, key) as on_b, rest(b.url, key) as key_on_b:
            await ready(on_b)
            assert (await key_on_b.get("/api/leads")).status_code == 200  # B knows the key now

            assert (await via_a.delete(f"/api/api-keys/{created['id']}")).status_code == 204
            # B hears of it over the broker: it closes the key's socket and, before
            # that, forgets the key; what B remembered of it is not waited out.
            assert await closed_with(on_b) == 4401
            r = await key_on_b.get("/api/leads")
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"


def test_both_processes_spend_one_budget_through_redis(processes):
    a, b = processes
    tenant = a.new_tenant()
    token = a.token_for(tenant.owner)
    via = [a.client(token), b.client(token)]
    answers = [via[n % 2].get("/api/contacts") for n in range(2)]
    assert [r.headers["x-ratelimit-limit"] for r in answers] == ["1200", "1200"]

    # Ten sign-ins an hour per e-mail: the 11th is refused, wherever each attempt lands.
    def attempt(n: int) -> int:
        return via[n % 2].post(
            "/api/auth/login", json={"email": tenant.owner.email, "password": f"guess {n}"}
        ).status_code

    assert [attempt(n) for n in range(11)] == [401] * 10 + [429]
