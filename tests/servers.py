"""Real Redis and PostgreSQL servers for the tests.

``INBOX_TEST_REDIS_URL`` / ``INBOX_TEST_DATABASE_URL`` name servers to use;
otherwise a throwaway server is started from the binaries on PATH. Under
``CI=true`` a missing server fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests needing it must run)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """A redis-server this test process owns: it can stop and restart it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not on PATH")
        self.binary = str(binary)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="inbox-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_binary(name: str) -> str | None:
    """From PATH, or where Debian's packages keep them (not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory."""

    def __init__(self) -> None:
        initdb, postgres = postgres_binary("initdb"), postgres_binary("postgres")
        if initdb is None or postgres is None:
            unavailable("initdb/postgres are not on PATH")
        self.initdb, self.postgres = str(initdb), str(postgres)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="inbox-pg-"))
        self.proc: subprocess.Popen[bytes] | None = None
        # initdb refuses to run as root; run the cluster as the postgres user.
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no 'postgres' user for initdb")
            shutil.chown(self.dir, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the cluster (made on the first start; a later one reuses its data)."""
        data = self.dir / "data"
        if not data.exists():
            self._initdb(data)
        self._run(data)

    def stop(self) -> None:
        """Stop the server, keeping its data: a fast shutdown, which ends the sessions
        clients still hold (a smart one, SIGTERM, would wait for them)."""
        if self.proc is not None:
            # The postmaster itself: runuser passes SIGTERM on, not SIGINT.
            postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGINT)
            self.proc.wait(timeout=30)
            self.proc = None

    def _initdb(self, data: Path) -> None:
        subprocess.run(
            [
                *self.run_as,
                self.initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _run(self, data: Path) -> None:
        self.proc = subprocess.Popen(
            [
                *self.run_as,
                self.postgres,
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.dir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30)
        wait_for_postgres(self.url, timeout=30)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_postgres(url: str, timeout: float) -> None:
    """The port opens before the server accepts sessions ("the database system is
    starting up"): wait until one can connect."""
    import asyncio

    import asyncpg

    async def connect() -> None:
        conn = await asyncpg.connect(url)
        await conn.close()

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(connect())
            return
        except (OSError, asyncpg.CannotConnectNowError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def redis_url_from_env() -> str | None:
    return os.environ.get("INBOX_TEST_REDIS_URL") or None


def postgres_url_from_env() -> str | None:
    return os.environ.get("INBOX_TEST_DATABASE_URL") or None


def create_database(server_url: str) -> tuple[str, str]:
    """Create a fresh, uniquely named database; return (its URL, its name)."""
    import asyncio

    import asyncpg

    name = f"inbox_test_{uuid.uuid4().hex[:12]}"
    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://").replace(
        "postgres://", "postgresql://"
    )

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}", name


def drop_database(server_url: str, name: str) -> None:
    import asyncio

    import asyncpg

    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://").replace(
        "postgres://", "postgresql://"
    )

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())
