"""The benchmark's surroundings: options, Redis and PostgreSQL, fresh databases with
the fixtures in them, server groups, and running a job in the generator process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cryptography.fernet import Fernet

from . import profiling, servers
from .jobspec import Credentials, Job
from .servers import REPO, Process

Backend = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Options:
    quick: bool = False
    runs: int = 3
    clients: int = 1000
    duration: float = 10.0
    # Events per second; None is the closed loop (unthrottled).
    rates: tuple[float | None, ...] = (10, 100, None)
    drivers: tuple[str, ...] = ("whatsapp", "generic")
    in_flight: int = 16
    memory_clients: int = 5000
    replay_events: int = 10_000
    ingest_subscribers: int = 100
    ingest_concurrency: int = 32
    stalled: bool = True
    reference: bool = True
    server_cpus: tuple[int, ...] | None = (0,)
    loadgen_cpus: tuple[int, ...] | None = (1,)
    scenarios: tuple[str, ...] = ("fanout", "ingest", "memory", "replay", "cluster")
    out: Path = REPO / "bench" / "results"
    postgres_url: str | None = None
    redis_url: str | None = None
    note: str | None = None
    # Record py-spy profiles of the servers into this directory.
    profile: Path | None = None
    # Run the fixtures and the services from this source tree instead of this one.
    checkout: Path | None = None


@dataclass
class ServerGroup:
    """One or more processes of the same server, sharing the clients."""

    kind: Literal["service", "reference"]
    label: str
    processes: list[Process]
    ports: list[int]
    credentials: Credentials = field(default_factory=Credentials)
    # The database the service processes share.
    database_url: str | None = None

    @property
    def targets(self) -> list[tuple[str, int]]:
        return [(servers.HOST, port) for port in self.ports]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} died:\n{process.log_tail()}")


class Environment:
    def __init__(
        self,
        options: Options,
        stack: contextlib.ExitStack,
        server_env: dict[str, str] | None = None,
        source: Path | None = None,
    ) -> None:
        self.options = options
        self._stack = stack
        # Set for the fixtures and every service process (e.g. the platforms' API
        # base URLs).
        self.server_env = dict(server_env or {})
        # The source tree the fixtures and the services run from: this one, or
        # another checkout (an earlier commit, to compare with).
        source = source or options.checkout
        self.source = REPO if source is None else source.resolve()
        if source is not None:
            self.server_env["PYTHONPATH"] = str(self.source)
        self.workdir = Path(tempfile.mkdtemp(prefix="inbox-bench-"))
        stack.callback(shutil.rmtree, self.workdir, True)
        self.secret_key = secrets.token_urlsafe(48)
        # Production requires one: the fixtures encrypt the channel's secrets with it
        # and every service process decrypts them.
        self.server_env.setdefault("INBOX_SECRETS_KEY", Fernet.generate_key().decode())
        # The load comes from a few credentials, far past any per-user budget.
        self.server_env.setdefault("INBOX_RATE_LIMITS", "off")
        # ... and holds every socket under one token: 5,000 for the memory run.
        self.server_env.setdefault("INBOX_MAX_SOCKETS_PER_USER", "100000")
        self._redis_url = options.redis_url
        self._postgres_url = options.postgres_url
        self._templates: dict[Backend, tuple[str, Credentials]] = {}
        self._databases = 0
        self._pg_prefix = f"inbox_bench_{secrets.token_hex(4)}"
        self._postgres_failure: str | None = None

    # -- infrastructure ------------------------------------------------------------------

    def redis_url(self) -> str:
        if self._redis_url is None:
            process, self._redis_url = servers.start_redis(self.workdir)
            self._stack.callback(process.stop)
        return self._redis_url

    def postgres_url(self) -> str:
        if self._postgres_url is None:
            if self._postgres_failure is not None:
                raise RuntimeError(f"PostgreSQL is unavailable: {self._postgres_failure}")
            try:
                process, url, directory = servers.start_postgres(self.workdir)
            except (OSError, KeyError, subprocess.SubprocessError) as exc:
                self._postgres_failure = repr(exc)
                raise
            self._stack.callback(shutil.rmtree, directory, True)
            self._stack.callback(process.stop)
            self._postgres_url = url
        return self._postgres_url

    def fresh_database(self, backend: Backend) -> tuple[str, Credentials]:
        """A new database holding the fixtures: a copy of a template made once."""
        if backend not in self._templates:
            self._templates[backend] = self._make_template(backend)
        template, credentials = self._templates[backend]
        self._databases += 1
        name = f"db{self._databases}"
        if backend == "sqlite":
            target = self.workdir / f"{name}.db"
            shutil.copyfile(template, target)
            return f"sqlite:///{target}", credentials
        url = self._create_pg_database(f"{self._pg_prefix}_{name}", template=template)
        return url, credentials

    def _make_template(self, backend: Backend) -> tuple[str, Credentials]:
        if backend == "sqlite":
            path = self.workdir / "template.db"
            url = f"sqlite:///{path}"
            location = str(path)
        else:
            location = f"{self._pg_prefix}_template"
            url = self._create_pg_database(location)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_")}
        env.update(INBOX_DATABASE_URL=url, INBOX_SECRET_KEY=self.secret_key, INBOX_ENV="production",
                   INBOX_LOG_LEVEL="warning")
        env.update(self.server_env)
        done = subprocess.run(
            [sys.executable, "-m", "bench.fixtures"], env=env, cwd=self.source, capture_output=True,
            text=True, timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"creating the fixtures failed:\n{done.stderr[-3000:]}")
        credentials = Credentials(**json.loads(done.stdout.strip().splitlines()[-1]))
        if backend == "sqlite":
            for suffix in ("-wal", "-shm"):
                Path(location + suffix).unlink(missing_ok=True)
        return location, credentials

    def _create_pg_database(self, name: str, template: str | None = None) -> str:
        import asyncpg

        server = self.postgres_url()
        admin = server.replace("postgres://", "postgresql://")

        async def create() -> None:
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn = await asyncpg.connect(admin)
                    break
                except (OSError, asyncpg.CannotConnectNowError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            try:
                suffix = f' TEMPLATE "{template}"' if template else ""
                await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
            finally:
                await conn.close()

        async def drop() -> None:
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(create())
        self._stack.callback(lambda: asyncio.run(drop()))
        base, _, _ = admin.partition("?")[0].rpartition("/")
        return f"{base}/{name}"

    # -- servers -------------------------------------------------------------------------

    @contextlib.contextmanager
    def service(self, backend: Backend, *, redis: bool, count: int = 1) -> Iterator[ServerGroup]:
        """`count` service processes sharing one fresh database."""
        url, credentials = self.fresh_database(backend)
        redis_url = self.redis_url() if redis else None
        label = f"service {backend}+{'redis' if redis else 'memory'}" + (
            f" x{count}" if count > 1 else ""
        )
        with contextlib.ExitStack() as stack:
            processes, ports = [], []
            for index in range(count):
                process, port = servers.start_service(
                    f"service-{backend}-{self._databases}-{index}", self.workdir,
                    database_url=url, redis_url=redis_url, secret_key=self.secret_key,
                    cpus=self.options.server_cpus, extra_env=self.server_env,
                )
                stack.callback(process.stop)
                processes.append(process)
                ports.append(port)
            yield ServerGroup("service", label, processes, ports, credentials, url)

    @contextlib.contextmanager
    def reference(self, *, count: int = 1) -> Iterator[ServerGroup]:
        redis_url = self.redis_url()
        with contextlib.ExitStack() as stack:
            processes, ports = [], []
            for index in range(count):
                process, port = servers.start_reference(
                    f"reference-{index}-{secrets.token_hex(2)}", self.workdir,
                    redis_url=redis_url, cpus=self.options.server_cpus,
                )
                stack.callback(process.stop)
                processes.append(process)
                ports.append(port)
            label = "reference" + (f" x{count}" if count > 1 else "")
            yield ServerGroup("reference", label, processes, ports)

    # -- the generator -------------------------------------------------------------------

    def job(self, group: ServerGroup, **fields: Any) -> Job:
        options = self.options
        base = Job(
            kind="fanout",
            targets=group.targets,
            server_pids=group.pids,
            server_cpus=list(options.server_cpus or []),
            loadgen_cpus=list(options.loadgen_cpus or []),
            driver="reference" if group.kind == "reference" else "whatsapp",
            credentials=group.credentials,
            run_tag=secrets.token_hex(4),
            clients=options.clients,
            in_flight=options.in_flight,
            duration=options.duration,
            drain_timeout=5.0 if options.quick else 15.0,
        )
        return replace(base, **fields)

    def run_job(self, group: ServerGroup, job: Job) -> dict[str, Any]:
        command = servers.pinned(
            self.options.loadgen_cpus, [sys.executable, "-m", "bench.loadgen"]
        )
        limit = 900 + 20 * job.duration
        with contextlib.ExitStack() as stack:
            profiles: list[Path] = []
            if self.options.profile is not None:
                rate = "max" if job.rate is None else f"{job.rate:g}"
                name = f"{job.kind}-{group.kind}-{job.driver}-{rate}-{job.run_tag}"
                profiles = stack.enter_context(
                    profiling.recording(self.options.profile, name, group.pids)
                )
            done = subprocess.run(
                command, input=json.dumps(job.to_json()), capture_output=True, text=True,
                cwd=REPO, timeout=limit, preexec_fn=servers.die_with_parent,
            )
        group.check_alive()
        if done.returncode != 0:
            logs = "".join(f"\n--- {p.name} log ---\n{p.log_tail(15)}" for p in group.processes)
            raise RuntimeError(f"the generator failed:\n{done.stderr[-3000:]}{logs}")
        result = dict(json.loads(done.stdout))
        if profiles:
            result["profile"] = profiling.summary(profiles)
        return result
