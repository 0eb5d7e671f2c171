"""The SQLite database holds every conversation, password hash and channel secret:
the files `inbox` creates for it are its owner's alone (0600), whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
from servers import free_port

from tests.inbox.test_cli import Cli, Served, clean_env, inbox_executable

# The usual default: without care, new files come out readable by everyone (0644).
UMASK = 0o022


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [inbox_executable(), *args], cwd=cli.cwd, env=cli.env, capture_output=True, text=True,
        timeout=120, umask=UMASK,
    )


def test_migrate_creates_the_database_file_for_its_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "inbox.db"
    cli = Cli(tmp_path, clean_env(f"sqlite:///{database}"))
    result = run(cli, "migrate")
    assert result.returncode == 0, result.stderr
    assert mode(database) == 0o600


def test_a_serving_database_and_its_wal_and_shm_files_are_the_owner_s_only(
    tmp_path: Path,
) -> None:
    database = tmp_path / "inbox.db"
    cli = Cli(tmp_path, clean_env(f"sqlite:///{database}"))
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [inbox_executable(), "serve", "--port", str(port)], cwd=tmp_path,
            env={**cli.env, "INBOX_LOG_LEVEL": "info"},
            stdout=out, stderr=subprocess.STDOUT, umask=UMASK,
        )
    cli.servers.append(proc)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    try:
        served.wait_until_live()
        assert httpx.get(f"{served.url}/readyz", timeout=10).status_code == 200
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        deadline = time.monotonic() + 10
        while not all(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        served.terminate()
        cli.close()


def test_an_existing_file_readable_by_others_is_kept_and_named(tmp_path: Path) -> None:
    database = tmp_path / "inbox.db"
    cli = Cli(tmp_path, clean_env(f"sqlite:///{database}"))
    assert run(cli, "migrate").returncode == 0
    os.chmod(database, 0o644)  # as earlier versions made it

    result = run(cli, "migrate")

    assert result.returncode == 0, result.stderr
    assert mode(database) == 0o644  # the operator's to change, maybe on purpose
    assert f"{database} may be read by other users (mode 644): `chmod 600` it" in result.stderr
