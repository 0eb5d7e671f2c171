"""SQLite on a disk that turns read-only under the running service, as ext4 does when it
meets an error (errors=remount-ro): webhooks answer 503, so the platform keeps them and
retries; a log line says the file system is read-only; every delivery acknowledged before
is in the database once the disk is back.

The disk is a small ext4 image on a loop device, mounted for the test, and made
read-only through ext4's own error path (root and loop devices only: elsewhere it is
skipped)."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import LiveServer

from inbox import migrate
from inbox.app import create_app
from inbox.db import Database
from inbox.settings import async_database_url
from tests.inbox.conftest import Service, make_settings
from tests.inbox.platforms import post_meta, whatsapp_channel, whatsapp_text

pytestmark = pytest.mark.backend("sqlite")


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


class Ext4Disk:
    def __init__(self, root: Path) -> None:
        self.image = root / "disk.img"
        self.directory = root / "mnt"
        self.directory.mkdir()
        with self.image.open("wb") as f:
            f.truncate(32 * 1024 * 1024)
        run("mkfs.ext4", "-q", "-F", str(self.image))
        self.mount()

    def mount(self) -> None:
        run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.directory))
        self.device = Path(run("findmnt", "-n", "-o", "SOURCE", str(self.directory))).name

    def fail(self) -> None:
        """What a failing sector makes ext4 do: remount itself read-only, files open."""
        Path(f"/sys/fs/ext4/{self.device}/trigger_fs_error").write_text("1")

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.directory)], check=False, capture_output=True)


@pytest.fixture()
def disk() -> Iterator[Ext4Disk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    with tempfile.TemporaryDirectory(prefix="inbox-rodisk-") as root:
        try:
            made = Ext4Disk(Path(root))
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot mount an ext4 image here: {exc}")
        try:
            yield made
        finally:
            made.unmount()


def test_a_disk_turned_read_only_answers_503_and_loses_nothing_acknowledged(
    disk, loop: Any, platform: Any, caplog
):
    path = disk.directory / "inbox.db"
    url = async_database_url(f"sqlite:///{path}")
    migrate.upgrade(url)
    # A disk this small is below the default free-space floor: 1 byte keeps the check on.
    settings = make_settings(url, graph_api_url=platform.base_url,
                             twilio_api_url=platform.base_url, min_free_disk_bytes=1)
    server = LiveServer(create_app(settings), loop)
    server.start()
    db = Database(url)
    service = Service(server.url, server.ws_url, settings, db, loop, db.dialect)
    try:
        tenant = service.new_tenant()
        channel = whatsapp_channel(tenant)
        acknowledged = []
        for n in range(3):
            wamid = f"wamid.before{n}"
            r = post_meta(service, "whatsapp", whatsapp_text(channel, wamid, "Hi"),
                          channel.secret)
            assert r.status_code == 200, r.text
            acknowledged.append(wamid)

        disk.fail()
        with caplog.at_level(logging.WARNING):
            for n in range(5):
                wamid = f"wamid.after{n}"
                r = post_meta(service, "whatsapp", whatsapp_text(channel, wamid, "Hi"),
                              channel.secret)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert f"the file system holding {path} is read-only" in caplog.text
        ready = service.client().get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["disk"] == (
            f"unwritable: the file system holding {path} is read-only")
    finally:
        for client in service.clients:
            client.close()
        loop.run(db.dispose())
        server.stop()

    # The operator brings the disk back (here: mounted again); what was acknowledged is
    # there, what was refused is not (the platform still holds it).
    disk.unmount()
    disk.mount()
    database = sqlite3.connect(path)
    try:
        kept = {row[0] for row in database.execute("SELECT external_id FROM messages")}
    finally:
        database.close()
    assert kept == set(acknowledged)
