"""`python -m bench.soak`: a long run at a steady mixed load, watching for slow leaks.

One `inbox serve` (SQLite or `--database-url`, with Redis as its broker) meets, for
`--minutes`:

- signed WhatsApp webhooks at `--rate` a second (open loop: sent on schedule whatever
  the server does), from `--senders` customers;
- `--clients` WebSockets following `message.received`, of which `--reconnects` a
  second are dropped and come back with `?last_event_id=` of the last event they saw;
- REST traffic at `--rest-rate` a second: conversation lists, a conversation's
  messages, and private notes written into conversations.

Every `--sample` seconds it reads the server's RSS and open file descriptors and the
clients' tallies. At the end it waits for the last events, then counts, for every
acknowledged webhook, the clients that never saw it (lost) and the ones that saw it
twice (duplicates). Results go to stdout as JSON (and `--out FILE`).

    .venv/bin/python -m bench.soak                         # 30 minutes, 1,000 sockets
    .venv/bin/python -m bench.soak --minutes 2 --clients 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from .drivers import Injector, WhatsAppDriver, open_loop
from .httpclient import HttpPool
from .procstat import load_average, process_cpu_seconds, process_rss_kib
from .servers import HOST, Process, start_redis, start_service
from .wsclient import Tally, WsClient, close_all, connect, connect_many

PATH = "/ws?events=message.received"
PHASE = "s"


class _Sampled(list[int]):
    """The tally's latency list, keeping one latency in `every` so a long run's
    millions of deliveries do not become the generator's own memory leak."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every, self.count = every, 0

    def append(self, value: int) -> None:
        self.count += 1
        if self.count % self.every == 0:
            super().append(value)


@dataclass
class Sockets:
    """The clients, replaced in place as they reconnect; each keeps what it has seen."""

    host: str
    port: int
    headers: dict[str, str]
    tally: Tally
    clients: list[WsClient] = field(default_factory=list)
    reconnects: int = 0
    failed_reconnects: int = 0

    async def open(self, count: int) -> None:
        self.clients = await connect_many(
            count, lambda _i: (self.host, self.port), PATH, self.headers, self.tally
        )

    async def reconnect(self, index: int) -> None:
        old = self.clients[index]
        old.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(old.done), 5)
        # A client that has seen no event yet resumes from where its session began (as
        # session.ready said, 0 on a new database), not from "now": events in flight to
        # it are owed too.
        resume_from = old.last_id or _session_start(old)
        path = f"{PATH}&last_event_id={resume_from}" if resume_from is not None else PATH

        def resumed(request: bytes, key: bytes, tally: Tally | None) -> WsClient:
            # What the old socket saw stays counted, from before the first byte: the
            # replay can arrive in the same read as `session.ready`.
            client = WsClient(request, key, tally)
            client.seen, client.last_id = old.seen, old.last_id
            return client

        for attempt in range(2):
            try:
                new = await connect(self.host, self.port, path, self.headers, self.tally,
                                    factory=resumed)
            except (OSError, ConnectionError, TimeoutError):
                self.failed_reconnects += 1
                if attempt == 0:
                    await asyncio.sleep(1)
                continue
            self.clients[index] = new
            self.reconnects += 1
            return

    @property
    def connected(self) -> int:
        return sum(1 for c in self.clients if not c.lost)


def _session_start(client: WsClient) -> int | None:
    """The last event id before the client's session began, from its session.ready;
    None when it never got one."""
    if not client.ready.done() or client.ready.cancelled() or client.ready.exception():
        return None
    return int(client.ready.result().get("last_event_id") or 0)


async def churn(sockets: Sockets, per_s: float, until: float) -> None:
    if per_s <= 0:
        return
    while time.monotonic() < until:
        await asyncio.sleep(1 / per_s)
        await sockets.reconnect(random.randrange(len(sockets.clients)))


@dataclass
class Rest:
    ok: int = 0
    errors: int = 0
    last_error: str | None = None
    latencies_ms: list[float] = field(default_factory=list)


async def rest_traffic(base: str, token: str, per_s: float, until: float, rest: Rest) -> None:
    if per_s <= 0:
        return
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=20) as client:
        tasks: set[asyncio.Task[None]] = set()

        async def one(step: int) -> None:
            started = time.monotonic()
            try:
                answer = await client.get("/api/conversations", params={"limit": 20})
                answer.raise_for_status()
                rows = answer.json()["data"]
                if rows and step % 3:
                    conversation = rows[step % len(rows)]["id"]
                    if step % 3 == 1:
                        answer = await client.get(f"/api/conversations/{conversation}/messages")
                    else:
                        answer = await client.post(
                            f"/api/conversations/{conversation}/messages",
                            json={"content": f"soak note {step}", "private": True},
                        )
                    answer.raise_for_status()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                rest.errors += 1
                rest.last_error = repr(exc)[:300]
                return
            rest.ok += 1
            if len(rest.latencies_ms) < 100_000:
                rest.latencies_ms.append((time.monotonic() - started) * 1000)

        step = 0
        while time.monotonic() < until:
            await asyncio.sleep(1 / per_s)
            step += 1
            if len(tasks) < 64:  # a slow server gets fewer requests, not a pile-up
                task = asyncio.create_task(one(step))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(list(tasks))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_10_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value), per ten minutes."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    if spread == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread * 600


async def soak(args: argparse.Namespace, server: Process, port: int, creds: dict[str, Any],
               run: str) -> dict[str, Any]:
    tally = Tally()
    tally.phase = ord(PHASE)
    tally.latencies_us = _Sampled(1000)
    headers = {"Authorization": f"Bearer {creds['token']}"}
    sockets = Sockets(HOST, port, headers, tally)
    await sockets.open(args.clients)
    driver = WhatsAppDriver(run, creds["whatsapp_secret"], creds["phone_number_id"],
                            args.senders)
    injector = Injector(driver, [HttpPool(HOST, port, 16)])
    rest = Rest()
    duration = args.minutes * 60
    started = time.monotonic()
    until = started + duration
    samples: list[dict[str, Any]] = []
    cpu_before = process_cpu_seconds(server.pid)

    def sample() -> None:
        samples.append({
            "t_s": round(time.monotonic() - started, 1),
            "rss_mib": round(process_rss_kib(server.pid) / 1024, 1),
            "fds": open_fds(server.pid),
            "sockets": sockets.connected,
            "webhooks_acked": len(injector.acked),
            "webhook_errors": injector.errors,
            "deliveries": tally.deliveries,
            "duplicates": tally.duplicates,
            "reconnects": sockets.reconnects,
            "rest_ok": rest.ok,
            "rest_errors": rest.errors,
        })
        print(json.dumps(samples[-1]), file=sys.stderr, flush=True)

    async def sampler() -> None:
        while time.monotonic() < until:
            sample()
            await asyncio.sleep(min(args.sample, max(0.0, until - time.monotonic())))

    try:
        await asyncio.gather(
            open_loop(injector, PHASE, args.rate, duration),
            churn(sockets, args.reconnects, until),
            rest_traffic(f"http://{HOST}:{port}", creds["token"], args.rest_rate, until, rest),
            sampler(),
        )
        # The last events reach every socket; then the books are closed.
        acked = sorted(injector.acked)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            not c.lost and not _has_all(c, acked) for c in sockets.clients
        ):
            await asyncio.sleep(0.25)
        sample()
        connected_at_end = sockets.connected
        lost = sum(
            sum(1 for seq in acked if seq >= len(c.seen) or not c.seen[seq])
            for c in sockets.clients
        )
        cpu_spent = process_cpu_seconds(server.pid) - cpu_before
    finally:
        tally.closing = True
        await close_all(sockets.clients)
        for pool in injector.pools:
            pool.close()

    # The first minutes fill caches and pools; leaks show in what comes after.
    settled = [s for s in samples if s["t_s"] >= min(120, duration / 4)]
    latencies = sorted(tally.latencies_us)
    return {
        "minutes": args.minutes,
        "clients": args.clients,
        "webhooks_per_s": args.rate,
        "rest_per_s": args.rest_rate,
        "reconnects_per_s": args.reconnects,
        "webhooks_sent": len(injector.acked) + injector.errors,
        "webhooks_acknowledged": len(acked),
        "webhook_errors": injector.errors,
        "webhook_last_error": injector.last_error,
        "deliveries": tally.deliveries,
        "lost": lost,
        "duplicates": tally.duplicates,
        "out_of_order": tally.out_of_order,
        "reconnects": sockets.reconnects,
        "failed_reconnects": sockets.failed_reconnects,
        "sockets_at_end": connected_at_end,
        "rest_ok": rest.ok,
        "rest_errors": rest.errors,
        "rest_last_error": rest.last_error,
        "rest_p95_ms": round(_percentile(rest.latencies_ms, 0.95), 1),
        "delivery_p50_ms": round(_percentile(latencies, 0.5) / 1000, 1),
        "delivery_p99_ms": round(_percentile(latencies, 0.99) / 1000, 1),
        "server_cpu_share": round(cpu_spent / max(1e-9, time.monotonic() - started), 3),
        "rss_mib": _curve(settled, "rss_mib"),
        "fds": _curve(settled, "fds"),
        "load_average": load_average(),
        "samples": samples,
    }


def _has_all(client: WsClient, acked: list[int]) -> bool:
    """Whether the last acknowledged event has reached the client: events of one
    organization arrive in order, so the ones before it came or never will."""
    return not acked or (acked[-1] < len(client.seen) and client.seen[acked[-1]] == 1)


def _percentile(values: list[float] | list[int], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))])


def _curve(samples: list[dict[str, Any]], key: str) -> dict[str, Any]:
    if not samples:
        return {}
    values = [s[key] for s in samples]
    slope = slope_per_10_min([(s["t_s"], s[key]) for s in samples])
    return {"first": values[0], "last": values[-1], "min": min(values), "max": max(values),
            "slope_per_10_min": None if slope is None else round(slope, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=10, help="webhooks a second")
    p.add_argument("--senders", type=int, default=200)
    p.add_argument("--rest-rate", type=float, default=10, help="REST requests a second")
    p.add_argument("--reconnects", type=float, default=2, help="socket reconnects a second")
    p.add_argument("--sample", type=float, default=30, help="seconds between samples")
    p.add_argument("--database-url", default=None)
    p.add_argument("--redis-url", default=os.environ.get("INBOX_BENCH_REDIS_URL"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="inbox-bench-soak-"))
    redis: Process | None = None
    redis_url = args.redis_url
    if redis_url is None:
        redis, redis_url = start_redis(work)
    database_url = args.database_url or f"sqlite:///{work / 'inbox.db'}"
    secret_key = "bench-soak-signing-key-0123456789abcdef"
    secrets_key = Fernet.generate_key().decode()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INBOX_")},
        "INBOX_ENV": "production",
        "INBOX_DATABASE_URL": database_url,
        "INBOX_SECRET_KEY": secret_key,
        "INBOX_SECRETS_KEY": secrets_key,
    }
    made = subprocess.run(
        [sys.executable, "-m", "bench.fixtures"], env=env, capture_output=True, check=True
    )
    creds = json.loads(made.stdout.decode().strip().splitlines()[-1])
    server: Process | None = None
    try:
        server, port = start_service(
            "inbox-soak", work, database_url=database_url, redis_url=redis_url,
            secret_key=secret_key, cpus=None,
            extra_env={
                "INBOX_SECRETS_KEY": secrets_key,
                "INBOX_LOG_LEVEL": "warning",
                # One credential holds every socket and sends every request.
                "INBOX_RATE_LIMITS": "off",
                "INBOX_MAX_SOCKETS_PER_USER": str(args.clients * 2 + 10),
            },
        )
        result = asyncio.run(soak(args, server, port, creds, run=f"{os.getpid()}"))
    finally:
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
