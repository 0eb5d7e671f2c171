"""/readyz takes an instance out of rotation while its SQLite database's disk is full:
SQLite then refuses every write while reads, and so the database check, still pass."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from support import LiveServer

from inbox.app import create_app
from inbox.settings import ConfigError, load_settings
from tests.inbox.conftest import make_settings


@pytest.fixture()
def start(own_database: str, loop: Any) -> Iterator[Any]:
    servers: list[LiveServer] = []

    def run(**overrides: Any) -> str:
        server = LiveServer(create_app(make_settings(own_database, **overrides)), loop)
        server.start()
        servers.append(server)
        return server.url

    yield run
    for server in servers:
        server.stop()


def free_bytes(database_url: str) -> int:
    path = make_url(database_url).database
    assert path
    return shutil.disk_usage(Path(path).parent).free


@pytest.mark.backend("sqlite")
def test_a_disk_with_less_free_space_than_the_minimum_is_not_ready(start, own_database):
    # The real file system's free space, measured as the service measures it, with the
    # minimum set above it: the disk is "full" by the operator's own measure.
    url = start(min_free_disk_bytes=free_bytes(own_database) + 2**40)
    r = httpx.get(f"{url}/readyz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["disk"].startswith("full: ")
    assert "free for own.db" in body["checks"]["disk"]
    assert body["checks"]["disk"].endswith("(INBOX_MIN_FREE_DISK_BYTES)")
    # Still alive: only out of rotation.
    assert httpx.get(f"{url}/livez").status_code == 200


def test_a_disk_with_room_is_ready_and_the_check_can_be_turned_off(start, own_database):
    checked = httpx.get(f"{start()}/readyz")
    unchecked = httpx.get(f"{start(min_free_disk_bytes=0)}/readyz")
    assert checked.status_code == unchecked.status_code == 200
    if own_database.startswith("sqlite"):
        assert checked.json()["checks"]["disk"] == "ok"
    else:
        # PostgreSQL's disk is its server's to watch.
        assert "disk" not in checked.json()["checks"]
    assert "disk" not in unchecked.json()["checks"]


def test_the_minimum_is_64_mib_unless_set_and_never_negative(monkeypatch):
    monkeypatch.setenv("INBOX_ENV", "test")
    monkeypatch.setenv("INBOX_SECRET_KEY", "x" * 32)
    monkeypatch.delenv("INBOX_MIN_FREE_DISK_BYTES", raising=False)
    assert load_settings().min_free_disk_bytes == 64 * 2**20
    monkeypatch.setenv("INBOX_MIN_FREE_DISK_BYTES", "-1")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith("INBOX_MIN_FREE_DISK_BYTES: ")
