"""Analytics at scale: each report's latency over 30 days of a million messages, and
ingest with and without the rollups.

    .venv/bin/python -m bench.analytics                       # SQLite
    .venv/bin/python -m bench.analytics --postgres-url postgresql://root@127.0.0.1:5432/postgres

One organization holds 100,000 conversations and 1,000,000 messages over 30 days
(four channels, ten agents, replies, private notes, closings, 100,000 contacts and
20,000 leads); another holds a tenth of that beside it. The rollups are rebuilt from
the messages (the figure is the rebuild's time). Two `inbox serve` processes then run
on that database, one plain and one without the rollups (bench/analytics_ingest.py).
Each report is asked --requests times of the plain one over HTTP, the reports taking
turns so that a burst of other load falls on all of them (a 30-day range in
Europe/Berlin; trends per day and per hour). Then ingest is compared in interleaved
pairs of runs, one delivery at a time and many in flight. A benchmark, not a test: it
prints p50/p95 per call and the ingest ratio, and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import orjson
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlmodel import col

from inbox import migrate
from inbox.db import Database
from inbox.models import Channel, MessageRollup, table_of
from inbox.security import issue_token
from inbox.services import rollups
from inbox.settings import async_database_url

from .analytics_data import DAYS, make_org, populate
from .analytics_ingest import APP_SECRET, ROLLUPS_OFF, SENDERS, Server, compare, warm
from .httpclient import HttpPool
from .servers import HOST, start_service

CALLS = {
    "overview": ("/api/analytics/overview", {}),
    "trends day": ("/api/analytics/trends", {"metric": "messages_received"}),
    "trends hour": ("/api/analytics/trends", {"metric": "messages_sent", "interval": "hour"}),
    "trends first response": ("/api/analytics/trends", {"metric": "first_response_seconds"}),
    "trends first resp. hour": (
        "/api/analytics/trends",
        {"metric": "first_response_seconds", "interval": "hour"},
    ),
    "agents": ("/api/analytics/agents", {}),
}


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def build(url: str, conversations: int, start: datetime) -> tuple[int, int]:
    """The dataset and its rollups; the busy organization's id and its owner's."""
    db = Database(async_database_url(url))
    org_id, users = await make_org(db, "Busy", 10)
    other_id, other_users = await make_org(db, "Beside", 3)
    began = time.perf_counter()
    await populate(db, org_id, users, conversations, start)
    await populate(db, other_id, other_users, conversations // 10, start)
    print(
        f"dataset: {conversations * 11 // 10:,} conversations, {conversations * 11:,} messages "
        f"in {time.perf_counter() - began:.0f} s"
    )
    began = time.perf_counter()
    await rollups.rebuild_all(db)
    print(f"rollups rebuilt from the messages in {time.perf_counter() - began:.1f} s")
    if db.dialect == "postgresql":
        # Steady state: autovacuum has marked the loaded pages all-visible, so that
        # index-only scans read no heap.
        async with db.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql(
                "VACUUM ANALYZE"
            )
    await db.dispose()
    return org_id, users[0]


async def time_reports(
    port: int, token: str, window: dict[str, str], requests: int
) -> dict[str, list[float]]:
    """Milliseconds of each call, the calls taking turns."""
    pool = HttpPool(HOST, port, 1)
    headers = {"Authorization": f"Bearer {token}"}
    took: dict[str, list[float]] = {name: [] for name in CALLS}
    try:
        for round_ in range(requests + 1):
            for name, (path, params) in CALLS.items():
                target = f"{path}?{urlencode({**window, **params})}"
                began = time.perf_counter()
                status, body = await pool.post(target, b"", headers, timeout=60, method="GET")
                elapsed = (time.perf_counter() - began) * 1000
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}: {body[:300]!r}")
                if round_:  # the first round warms the caches
                    took[name].append(elapsed)
    finally:
        pool.close()
    return took


async def make_channel(port: int, token: str) -> str:
    phone = f"777{secrets.randbelow(10**8):08d}"
    settings = {
        "phone_number_id": phone,
        "access_token": "t",
        "app_secret": APP_SECRET,
        "verify_token": "v",
    }
    pool = HttpPool(HOST, port, 1)
    try:
        status, body = await pool.post(
            "/api/channels",
            orjson.dumps({"kind": "whatsapp", "name": "bench", "settings": settings}),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    finally:
        pool.close()
    if status != 201 and status != 200:
        raise RuntimeError(f"making the channel answered {status}: {body[:300]!r}")
    return phone


def measure(url: str, args: argparse.Namespace) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    org_id, owner_id = asyncio.run(build(url, args.conversations, start))
    key = secrets.token_urlsafe(48)
    env = {
        "INBOX_SECRETS_KEY": Fernet.generate_key().decode(),
        "INBOX_RATE_LIMITS": "off",
        "INBOX_LOG_LEVEL": "warning",
    }
    logs = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    with ExitStack() as stack:
        plain, plain_port = start_service(
            "plain", logs, database_url=url, redis_url=None, secret_key=key, cpus=None,
            extra_env=env,
        )
        stack.callback(plain.stop)
        off, off_port = start_service(
            "rollups-off", logs, database_url=url, redis_url=None, secret_key=key, cpus=None,
            extra_env={**env, "PYTHONPATH": ROLLUPS_OFF},
        )
        stack.callback(off.stop)
        token = issue_token(
            user_id=owner_id, organization_id=org_id, role="owner", key=key, ttl_seconds=86400
        )
        window = {"from": start.isoformat(), "to": end.isoformat(), "timezone": "Europe/Berlin"}
        load = os.getloadavg()[0]
        took = asyncio.run(time_reports(plain_port, token, window, args.requests))
        print(f"\nload average {load:.1f} before the calls, {os.getloadavg()[0]:.1f} after")
        print(f"{'call (30 days, over HTTP)':<28}{'p50 ms':>9}{'p95 ms':>9}")
        for name, samples in took.items():
            print(f"{name:<28}{_quantile(samples, 0.5):>9.1f}{_quantile(samples, 0.95):>9.1f}")
        phone = asyncio.run(make_channel(plain_port, token))
        servers = Server(plain_port, plain.pid), Server(off_port, off.pid)
        warm(list(servers), phone)
        print(
            f"\ningest: {args.pairs} interleaved pairs of runs (AB BA ...), "
            f"{args.webhooks} webhooks a run; load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'in flight':>9}  {'figure':<11}{'with':>9}{'without':>10}{'ratio':>12}")
        for in_flight in args.in_flight:
            result = compare(*servers, phone, args.webhooks, in_flight, args.pairs)
            print("\n".join(result.lines()), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        # The plain server's webhooks alone are counted: the other one really skipped.
        plain_share = SENDERS + args.webhooks * args.pairs * len(args.in_flight)
        counted = asyncio.run(_received(url, org_id))
        print(f"rollups count {counted:,} of the bench channel's messages; the plain server "
              f"stored {plain_share:,}: {'as expected' if counted == plain_share else 'WRONG'}")


async def _received(url: str, org_id: int) -> int:
    """Messages the rollups counted on the channel the ingest runs made."""
    rolled = table_of(MessageRollup).c
    db = Database(async_database_url(url))
    try:
        async with db.engine.connect() as conn:
            channel = (
                select(func.max(col(Channel.id))).where(col(Channel.organization_id) == org_id)
            ).scalar_subquery()
            total = await conn.scalar(
                select(func.coalesce(func.sum(rolled.received), 0)).where(
                    rolled.organization_id == org_id, rolled.channel_id == channel
                )
            )
    finally:
        await db.dispose()
    return int(total or 0)


async def _admin(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", help="a PostgreSQL server to make a database on")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40, help="timed calls of each report")
    parser.add_argument("--webhooks", type=int, default=1000, help="webhooks in each ingest run")
    parser.add_argument("--pairs", type=int, default=6, help="pairs of ingest runs per level")
    parser.add_argument(
        "--in-flight",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 32],
        help="webhooks in flight, one comparison each (comma-separated)",
    )
    args = parser.parse_args()
    if args.postgres_url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'analytics.db'}"
        migrate.upgrade(async_database_url(url))
        measure(url, args)
        return
    server = args.postgres_url.rstrip("/")
    name = f"inbox_bench_analytics_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        url = f"{server.rsplit('/', 1)[0]}/{name}"
        migrate.upgrade(async_database_url(url))
        measure(url, args)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
