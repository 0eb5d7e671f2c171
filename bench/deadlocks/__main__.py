"""`python -m bench.deadlocks`: deadlocks between two processes on one PostgreSQL.

Starts two `inbox serve` processes on a fresh PostgreSQL database and one Redis, with
the platforms' send APIs faked (`platform`), and posts a mix of signed deliveries and
REST calls to both at once (`traffic`): the same contacts, conversations and messages
written from both processes. Counts the database's deadlocks
(`pg_stat_database.deadlocks`, read once the servers have stopped and their sessions
have reported), the services' log lines that mention one, and every 5xx answer.

    .venv/bin/python -m bench.deadlocks                      # 10,000 requests
    .venv/bin/python -m bench.deadlocks --checkout /tmp/old  # the service of another tree

`--checkout DIR` runs the fixtures and the services from DIR (e.g. `git archive` of an
earlier commit, unpacked) with this load, for a before and after under the same mix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from ..environment import Environment, Options, ServerGroup
from ..httpclient import HttpError, HttpPool
from ..servers import HOST, free_port
from .platform import FakePlatform
from .traffic import Accounts, Request, Traffic

SMS_NUMBER = "+15550001000"
SMS_ACCOUNT_SID = "AC" + "d" * 32
SMS_AUTH_TOKEN = "bench-twilio-auth-token"


@dataclass
class Tally:
    requests: int = 0
    webhooks: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    transport_errors: int = 0

    def record(self, request: Request, status: int | None, body: bytes) -> None:
        self.requests += 1
        self.webhooks += request.webhook
        if status is None:
            self.transport_errors += 1
            return
        self.by_status[status] += 1
        if status >= 400:
            key = f"{status} {request.kind}"
            self.failures[key] += 1
            self.samples.setdefault(key, body[:300].decode(errors="replace"))


class Load:
    def __init__(self, group: ServerGroup, traffic: Traffic, tally: Tally) -> None:
        self.traffic = traffic
        self.tally = tally
        self.pools = [HttpPool(HOST, port, 64) for port in group.ports]
        self._turn = 0

    async def post(self, request: Request) -> int | None:
        target = request.target
        if target is None:
            self._turn += 1
            target = self._turn % len(self.pools)
        try:
            status, body = await self.pools[target].post(
                request.path, request.body, request.headers, timeout=120, method=request.method
            )
        except (HttpError, OSError, TimeoutError):
            self.tally.record(request, None, b"")
            return None
        self.tally.record(request, status, body)
        return status

    async def run(self, count: int, concurrency: int) -> None:
        left = count

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await self.post(self.traffic.next_request())

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    def close(self) -> None:
        for pool in self.pools:
            pool.close()


async def _setup(group: ServerGroup, traffic: Traffic, load: Load) -> None:
    """An SMS channel beside the fixtures' WhatsApp one; every sender writes once on
    each channel; the WhatsApp and SMS conversations that made are what agents reply to."""
    urls = [f"http://{HOST}:{port}" for port in group.ports]
    headers = {"Authorization": f"Bearer {traffic.accounts.token}"}
    async with httpx.AsyncClient(base_url=urls[0], headers=headers, timeout=30) as api:
        answer = await api.post("/api/channels", json={
            "kind": "sms", "name": "Bench SMS",
            "settings": {"phone_number": SMS_NUMBER, "account_sid": SMS_ACCOUNT_SID,
                         "auth_token": SMS_AUTH_TOKEN},
        })
        answer.raise_for_status()
        # The other process learns of the channel within its cache's 5 seconds.
        for target in range(len(urls)):
            deadline = time.monotonic() + 15
            while True:
                status = await load.post(traffic.sms_text(traffic.senders[0], target))
                if status == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
        gate = asyncio.Semaphore(8)

        async def first(sender: str) -> None:
            async with gate:
                for request in (traffic.whatsapp_text([sender]), traffic.sms_text(sender),
                                traffic.generic_text(sender)):
                    await load.post(request)

        await asyncio.gather(*(first(sender) for sender in traffic.senders))
        offset = 0
        while True:
            page = (await api.get("/api/conversations",
                                  params={"limit": 200, "offset": offset})).json()
            # A generic channel without a callback_url cannot be replied to (422).
            traffic.known.conversations += [
                c["id"] for c in page["data"] if c["channel"]["kind"] != "generic"
            ]
            if not page["pagination"]["has_more"]:
                break
            offset += 200


async def _measure(
    group: ServerGroup, accounts: Accounts, platform_port: int, args: argparse.Namespace
) -> tuple[Tally, float, int]:
    run = secrets.token_hex(3)
    urls = [f"http://{HOST}:{port}" for port in group.ports]
    traffic = Traffic(accounts, args.senders, args.seed, run, urls)
    tally = Tally()
    load = Load(group, traffic, tally)
    platform = FakePlatform(traffic, load.post, args.seed + 1, platform_port)
    try:
        async with platform.running():
            await _setup(group, traffic, load)
            started = time.monotonic()
            await load.run(args.requests, args.concurrency)
            await platform.settle()
            elapsed = time.monotonic() - started
    finally:
        load.close()
    return tally, elapsed, platform.sends


async def _deadlocks(database_url: str) -> int:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        value = await connection.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    return int(value or 0)


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d ")


def _deadlock_reports(log: Path) -> list[str]:
    """The server's account of each deadlock: who waited for what, and the statements."""
    if not log.exists():
        return []
    reports: list[str] = []
    current: list[str] | None = None
    for line in log.read_text(errors="replace").splitlines():
        if "ERROR:  deadlock detected" in line:
            current = []
            reports.append("")
            continue
        if current is None:
            continue
        if _TIMESTAMP.match(line) and "DETAIL:" not in line:
            reports[-1] = "\n".join(current)
            current = None
            continue
        current.append(line.split("DETAIL:  ", 1)[-1].strip())
    if current is not None:
        reports[-1] = "\n".join(current)
    return reports


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.deadlocks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=10_000,
                   help="requests the load makes, webhooks and REST (default 10000); the "
                   "platform's statuses for the replies come on top")
    p.add_argument("--concurrency", type=int, default=64,
                   help="requests in flight, spread over both processes (default 64)")
    p.add_argument("--senders", type=int, default=60,
                   help="customers writing on every channel (default 60)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--checkout", type=Path,
                   help="run the fixtures and the services from this source tree")
    p.add_argument("--postgres-url", default=os.environ.get("INBOX_BENCH_POSTGRES_URL"),
                   help="a PostgreSQL server where databases may be created and dropped "
                   "(default: $INBOX_BENCH_POSTGRES_URL, else a throwaway cluster, whose "
                   "log also gives each deadlock's statements)")
    p.add_argument("--redis-url", default=os.environ.get("INBOX_BENCH_REDIS_URL"))
    p.add_argument("--out", type=Path, help="also write the result as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    platform_port = free_port()
    server_env = {
        "INBOX_GRAPH_API_URL": f"http://{HOST}:{platform_port}",
        "INBOX_TWILIO_API_URL": f"http://{HOST}:{platform_port}",
        "INBOX_LOG_LEVEL": "warning",
        # Nothing balances the load here: no reason to wait before stopping.
        "INBOX_DRAIN_SECONDS": "0",
    }
    options = Options(server_cpus=None, loadgen_cpus=None, reference=False,
                      postgres_url=args.postgres_url, redis_url=args.redis_url)
    with contextlib.ExitStack() as stack:
        env = Environment(options, stack, server_env, args.checkout)
        with env.service("postgres", redis=True, count=2) as group:
            creds = group.credentials
            accounts = Accounts(creds.token, creds.api_key, creds.whatsapp_secret,
                                creds.phone_number_id, SMS_NUMBER, SMS_ACCOUNT_SID,
                                SMS_AUTH_TOKEN)
            tally, elapsed, sends = asyncio.run(
                _measure(group, accounts, platform_port, args)
            )
            group.check_alive()
            processes = list(group.processes)
        # Stopped: every session has reported its deadlocks to the statistics.
        assert group.database_url is not None
        deadlocks = asyncio.run(_deadlocks(group.database_url))
        logged = sum(p.log_path.read_text(errors="replace").count("deadlock detected")
                     for p in processes)
        reports = _deadlock_reports(env.workdir / "postgres.log")
    server_errors = sum(n for status, n in tally.by_status.items() if status >= 500)
    result: dict[str, Any] = {
        "checkout": str(args.checkout) if args.checkout else "this tree",
        "requests": tally.requests,
        "webhook_deliveries": tally.webhooks,
        "rest_requests": tally.requests - tally.webhooks,
        "replies_sent_by_the_platform": sends,
        "seconds": round(elapsed, 1),
        "deadlocks": deadlocks,
        "deadlocks_per_10k_deliveries": round(deadlocks * 10_000 / max(tally.webhooks, 1), 2),
        "service_log_lines_naming_a_deadlock": logged,
        "server_errors_5xx": server_errors,
        "by_status": dict(sorted(tally.by_status.items())),
        "failures": dict(tally.failures),
        "failure_samples": tally.samples,
        "transport_errors": tally.transport_errors,
        "deadlock_reports": reports,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(
        f"{deadlocks} deadlocks in {tally.webhooks} webhook deliveries "
        f"({result['deadlocks_per_10k_deliveries']} per 10,000) and "
        f"{tally.requests - tally.webhooks} REST calls; {server_errors} answers 5xx",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
