"""Two `inbox serve` processes on one Redis and one database spend each budget together:
requests alternated between them are refused exactly at the limit in total."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from servers import create_database, drop_database, free_port

from inbox.db import Database
from inbox.settings import async_database_url
from tests.inbox.conftest import SECRET, Service, make_settings

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

INBOX = str(Path(sys.executable).with_name("inbox"))
# Per hour: nothing refills while the test runs. The budgets are per credential, and each
# test makes its own, so a Redis shared with other tests holds no budget of theirs.
RATES = "read=6/hour,write=4/hour"


def start(env: dict[str, str], log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([INBOX, "serve", "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"inbox serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url, proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"inbox serve never got ready: {log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def pair(postgres_server_url: str, redis_url: str, loop: Any) -> Iterator[list[Service]]:
    """Processes A and B, each seen as a Service on the database they share."""
    url, name = create_database(postgres_server_url)
    logs = Path(tempfile.mkdtemp(prefix="inbox-shared-budget-"))
    env = {
        **os.environ,
        "INBOX_DATABASE_URL": url,
        "INBOX_REDIS_URL": redis_url,
        "INBOX_SECRET_KEY": SECRET,
        "INBOX_SECRETS_KEY": Fernet.generate_key().decode(),
        "INBOX_LOG_LEVEL": "warning",
        "INBOX_DRAIN_SECONDS": "0",
        "INBOX_RATE_LIMITS": RATES,
    }
    subprocess.run([INBOX, "migrate"], env=env, check=True, capture_output=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for label in "AB":
            served, proc = start(env, logs / f"{label}.log")
            urls.append(served)
            procs.append(proc)
        db = Database(async_database_url(url))
        settings = make_settings(async_database_url(url), redis_url=redis_url)
        services = [Service(u, "ws" + u.removeprefix("http"), settings, db, loop, db.dialect)
                    for u in urls]
        yield services
        for service in services:
            for client in service.clients:
                client.close()
        loop.run(db.dispose())
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        drop_database(postgres_server_url, name)


def test_reads_alternated_between_two_processes_are_refused_exactly_at_the_limit(pair):
    a, b = pair
    tenant = a.new_tenant()
    token = a.token_for(tenant.owner)
    via = [a.client(token), b.client(token)]
    answers = [via[n % 2].get("/api/contacts") for n in range(7)]
    assert [r.status_code for r in answers] == [200] * 6 + [429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["5", "4", "3", "2", "1",
                                                                      "0", "0"]
    assert answers[-1].json()["error"]["code"] == "RATE_LIMITED"
    # Refused by either process now; another credential is not.
    assert via[1].get("/api/contacts").status_code == 429
    assert b.client(a.token_for(tenant.user()[0])).get("/api/contacts").status_code == 200


def test_an_api_key_s_writes_through_both_processes_share_one_budget(pair):
    a, b = pair
    key = a.new_tenant().api_key("admin")
    via = [a.client(key), b.client(key)]
    statuses = [via[n % 2].post("/api/contacts", json={"name": f"C{n}"}).status_code
                for n in range(5)]
    assert statuses == [201] * 4 + [429]
