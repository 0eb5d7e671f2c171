"""`inbox serve` killed with SIGKILL while signed webhooks arrive, 16 at a time; then
started again, and every delivery that got no 200 sent again (as the platform retries
it): each message is kept exactly once, every acknowledged one among them, and the
outbox's ids stay dense."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from servers import create_database, drop_database, free_port

from inbox import migrate
from inbox.settings import async_database_url
from tests.inbox.platforms import Connected, meta_headers, unique_digits, whatsapp_text
from tests.inbox.test_cli import Cli, clean_env

DELIVERIES = 1000
IN_FLIGHT = 16
# Acknowledged deliveries before the kill: it lands in the middle of the stream.
KILL_AFTER = 300


@pytest.fixture(params=["sqlite", "postgres"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cli, Connected, str]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inbox.db'}"
        yield from _connected(tmp_path, url)
        return
    server_url = request.getfixturevalue("postgres_server_url")
    url, name = create_database(server_url)
    try:
        migrate.upgrade(async_database_url(url))
        yield from _connected(tmp_path, url)
    finally:
        drop_database(server_url, name)


def _connected(tmp_path: Path, url: str) -> Iterator[tuple[Cli, Connected, str]]:
    cli = Cli(tmp_path, clean_env(url))
    try:
        org = cli.json("create-org", "--name", "Acme", "--create")
        n = unique_digits(9)
        settings = {
            "phone_number_id": f"106{n}",
            "access_token": f"wa-token-{n}",
            "app_secret": f"wa-secret-{n}",
            "verify_token": f"wa-verify-{n}",
        }
        channel = cli.json(
            "create-channel", "--org", str(org["id"]), "--kind", "whatsapp", "--name", "WA",
            *[arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")],
        )
        yield cli, Connected(channel["id"], "whatsapp", channel["routing_key"], settings), url
    finally:
        cli.close()


def stored(url: str, channel_id: int) -> tuple[list[str], list[int]]:
    """The channel's messages' platform ids, and the outbox's event ids in order."""
    messages = "SELECT external_id FROM messages WHERE channel_id = {}"
    events = "SELECT id FROM events ORDER BY organization_id, id"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return ([r[0] for r in db.execute(messages.format("?"), (channel_id,))],
                    [r[0] for r in db.execute(events)])

    async def read() -> tuple[list[str], list[int]]:
        db = await asyncpg.connect(url)
        try:
            return ([r[0] for r in await db.fetch(messages.format("$1"), channel_id)],
                    [r[0] for r in await db.fetch(events)])
        finally:
            await db.close()

    return asyncio.run(read())


def deliver(url: str, bodies: dict[str, bytes], secret: str, wamids: list[str],
            acknowledged: set[str], on_ack: threading.Event | None = None) -> None:
    """Post each delivery once, 16 at a time; note those answered 200."""
    lock = threading.Lock()
    local = threading.local()
    clients: list[httpx.Client] = []

    def post(wamid: str) -> None:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=url, timeout=30)
            with lock:
                clients.append(local.http)
        body = bodies[wamid]
        try:
            answer = local.http.post("/webhooks/whatsapp", content=body,
                                     headers=meta_headers(body, secret))
        except httpx.TransportError:
            return
        if answer.status_code == 200:
            with lock:
                acknowledged.add(wamid)
                if on_ack is not None and len(acknowledged) >= KILL_AFTER:
                    on_ack.set()

    try:
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(post, wamids))
    finally:
        for client in clients:
            client.close()


def test_a_server_killed_mid_stream_keeps_every_acknowledged_message_once(cli):
    cli, channel, database = cli
    wamids = [f"wamid.crash{i:04d}" for i in range(DELIVERIES)]
    bodies = {w: whatsapp_text(channel, w, f"message {w}") for w in wamids}
    acknowledged: set[str] = set()

    served = cli.serve(free_port())
    halfway = threading.Event()
    stream = threading.Thread(
        target=deliver, args=(served.url, bodies, channel.secret, wamids, acknowledged, halfway)
    )
    stream.start()
    halfway.wait(timeout=120)
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait()
    stream.join()
    before_kill = set(acknowledged)
    assert KILL_AFTER <= len(before_kill) < DELIVERIES, "the kill landed outside the stream"

    restarted = cli.serve(free_port())
    for _attempt in range(5):
        missing = [w for w in wamids if w not in acknowledged]
        if not missing:
            break
        deliver(restarted.url, bodies, channel.secret, missing, acknowledged)
    assert len(acknowledged) == DELIVERIES

    kept, event_ids = stored(database, channel.id)
    assert len(kept) == DELIVERIES, "a message was lost or kept twice"
    assert set(kept) == set(wamids)
    assert event_ids == list(range(1, len(event_ids) + 1)), "the outbox has a gap"
