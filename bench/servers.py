"""The processes a benchmark starts: the service, the reference, Redis, PostgreSQL.

Everything listens on 127.0.0.1 only. Each process is registered for clean-up the
moment it starts and is stopped by its own pid; a child also gets SIGTERM from the
kernel if the benchmark dies first (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the benchmark dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def pinned(cpus: Sequence[int] | None, command: list[str]) -> list[str]:
    """`command` under taskset, or as is when pinning is off."""
    if not cpus:
        return command
    return ["taskset", "-c", ",".join(str(c) for c in cpus), *command]


class Process:
    """One child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_for_http(process: Process, port: int, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{HOST}:{port}{path}"
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{process.name} did not answer {url} in {timeout}s:\n{process.log_tail()}")


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {HOST}:{port} after {timeout}s")


def inbox_command() -> list[str]:
    script = Path(sys.executable).parent / "inbox"
    return [str(script)] if script.exists() else [sys.executable, "-m", "inbox.cli"]


def start_service(
    name: str,
    log_dir: Path,
    *,
    database_url: str,
    redis_url: str | None,
    secret_key: str,
    cpus: Sequence[int] | None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Process, int]:
    """`inbox serve` as deployed: uvicorn's default WebSocket implementation, no
    compression, the default log level (unless `extra_env` says otherwise)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INBOX_", "DATABASE_URL",
                                                                     "REDIS_URL", "PORT"))}
    env.update(
        INBOX_ENV="production",
        INBOX_SECRET_KEY=secret_key,
        INBOX_DATABASE_URL=database_url,
        INBOX_HOST=HOST,
        INBOX_PORT=str(port),
    )
    if redis_url:
        env["INBOX_REDIS_URL"] = redis_url
    # BENCH_SERVER_ENV="INBOX_X=1,INBOX_Y=2": settings for an A/B run of one option.
    env.update(
        pair.split("=", 1) for pair in os.environ.get("BENCH_SERVER_ENV", "").split(",") if pair
    )
    env.update(extra_env or {})
    process = Process(name, pinned(cpus, [*inbox_command(), "serve"]), log_dir, env, log_dir)
    try:
        wait_for_http(process, port, "/livez")
    except BaseException:
        process.stop()
        raise
    return process, port


def start_reference(
    name: str, log_dir: Path, *, redis_url: str, cpus: Sequence[int] | None
) -> tuple[Process, int]:
    port = free_port()
    env = dict(os.environ, BENCH_REFERENCE_REDIS_URL=redis_url)
    command = [
        sys.executable, "-m", "uvicorn", "bench.reference_server:app",
        "--host", HOST, "--port", str(port),
        "--ws-per-message-deflate", "false",
        "--no-access-log", "--log-level", "warning",
    ]
    process = Process(name, pinned(cpus, command), log_dir, env, REPO)
    try:
        wait_for_http(process, port, "/livez")
    except BaseException:
        process.stop()
        raise
    return process, port


def start_redis(log_dir: Path) -> tuple[Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not on PATH (or pass --redis-url)")
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="redis-", dir=log_dir))
    command = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
               "--dir", str(data)]
    process = Process("redis", command, log_dir)
    wait_for_port(port)
    return process, f"redis://{HOST}:{port}/0"


def postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def start_postgres(log_dir: Path) -> tuple[Process, str, Path]:
    """A throwaway cluster (fsync on, as deployed); returns its directory to remove."""
    initdb, postgres = postgres_binary("initdb"), postgres_binary("postgres")
    if initdb is None or postgres is None:
        raise FileNotFoundError("initdb/postgres not found (or pass --postgres-url)")
    # Not under the run's directory: the cluster's user must be able to reach it.
    directory = Path(tempfile.mkdtemp(prefix="inbox-bench-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")  # KeyError: no user to run the cluster as
        shutil.chown(directory, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data = directory / "data"
    subprocess.run(
        [*run_as, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    port = free_port()
    command = [*run_as, postgres, "-D", str(data), "-p", str(port), "-h", HOST,
               "-k", str(directory), "-c", "max_connections=200"]
    process = Process("postgres", command, log_dir)
    wait_for_port(port)
    return process, f"postgresql://postgres@{HOST}:{port}/postgres", directory
