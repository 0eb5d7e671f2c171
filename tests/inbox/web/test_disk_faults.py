"""SQLite on a full disk: webhooks answer 503 (the platform retries them), a log line
says why, nothing acknowledged is lost, and once the disk has room again deliveries are
taken without a restart.

The disk is a small tmpfs mounted for the test (root only: elsewhere it is skipped). A
read-only disk is not tested: Linux refuses to remount read-only a file system with
files open for writing (the database's), which is the only way to make one read-only
under a running process; SQLite's "attempt to write a readonly database" is an
OperationalError like "database or disk is full", answered 503 the same way."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col
from support import LiveServer

from inbox import migrate
from inbox.app import create_app
from inbox.db import Database
from inbox.models import Message
from inbox.settings import async_database_url
from tests.inbox.conftest import Service, make_settings
from tests.inbox.platforms import post_meta, rows, whatsapp_channel, whatsapp_text

pytestmark = pytest.mark.backend("sqlite")


def mount(directory: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                   check=True, capture_output=True)


@pytest.fixture()
def small_disk() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="inbox-disk-"))
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    try:
        mount(directory, "size=16m")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
        directory.rmdir()


@pytest.fixture()
def service(small_disk: Path, loop: Any, platform: Any) -> Iterator[Service]:
    url = async_database_url(f"sqlite:///{small_disk / 'inbox.db'}")
    migrate.upgrade(url)
    settings = make_settings(url, graph_api_url=platform.base_url,
                             twilio_api_url=platform.base_url, min_free_disk_bytes=0)
    server = LiveServer(create_app(settings), loop)
    server.start()
    db = Database(url)
    service = Service(server.url, server.ws_url, settings, db, loop, db.dialect)
    try:
        yield service
    finally:
        for client in service.clients:
            client.close()
        loop.run(db.dispose())
        server.stop()


def fill(disk: Path) -> Path:
    """Write a file until the disk has no room left."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
        for size in (65536, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    return filler


def test_a_full_disk_answers_webhooks_503_and_loses_nothing_acknowledged(
    service, small_disk, caplog
):
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant)
    acknowledged = []
    for n in range(3):
        wamid = f"wamid.room{n}"
        r = post_meta(service, "whatsapp", whatsapp_text(channel, wamid, "Hi"), channel.secret)
        assert r.status_code == 200, r.text
        acknowledged.append(wamid)

    filler = fill(small_disk)
    with caplog.at_level(logging.WARNING):
        refused = []
        for n in range(20):
            wamid = f"wamid.full{n}"
            r = post_meta(service, "whatsapp", whatsapp_text(channel, wamid, "x" * 4000),
                          channel.secret)
            assert r.status_code != 500, r.text
            if r.status_code == 200:
                acknowledged.append(wamid)
            else:
                assert r.status_code == 503, r.text
                refused.append(wamid)
    assert refused, "every delivery was taken on a full disk"
    assert "database or disk is full" in caplog.text

    filler.unlink()
    for wamid in refused:
        r = post_meta(service, "whatsapp", whatsapp_text(channel, wamid, "x" * 4000),
                      channel.secret)
        assert r.status_code == 200, r.text
    kept = {m.external_id for m in rows(service, Message, col(Message.channel_id) == channel.id)}
    assert kept == set(acknowledged) | set(refused)

