"""`python -m bench.archive_ingest [--postgres-url URL]`: ingest with and without the
webhook archive, compared as `bench.analytics` compares the rollups.

Two `inbox serve` processes share one fresh database: a plain one, and one started
with INBOX_WEBHOOK_ARCHIVE_DAYS=0. Both answer the same signed WhatsApp webhooks from
the same known senders, in runs that alternate AB BA AB ... (`--pairs`, `--webhooks`
a run, each `--in-flight` level); each pair gives a ratio (with / without) of
webhooks a second and of the server process's CPU time per webhook, and the figure is
the median ratio, which load from other work on the machine disturbs far less than
any single run. At the end it counts the plain server's records in the archive.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import func, select

from inbox import migrate
from inbox.db import Database
from inbox.models import WebhookRecord
from inbox.security import issue_token
from inbox.services import accounts
from inbox.settings import async_database_url

from .analytics import make_channel
from .analytics_ingest import SENDERS, Server, compare, warm
from .batch_cost import _admin
from .servers import start_service


async def owner(url: str) -> tuple[int, int]:
    db = Database(url)
    try:
        org = await accounts.create_organization(db, "Archive A/B")
        assert org.id is not None
        user = await accounts.create_user(
            db, org.id, email=f"owner-{uuid.uuid4().hex[:8]}@bench.example",
            password=secrets.token_urlsafe(16), role="owner",
        )
        assert user.id is not None
        return org.id, user.id
    finally:
        await db.dispose()


async def records(url: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(WebhookRecord)) or 0)
    finally:
        await db.dispose()


def measure(url: str, args: argparse.Namespace) -> None:
    org_id, owner_id = asyncio.run(owner(url))
    key = secrets.token_urlsafe(48)
    env = {
        "INBOX_SECRETS_KEY": Fernet.generate_key().decode(),
        "INBOX_RATE_LIMITS": "off",
        "INBOX_LOG_LEVEL": "warning",
    }
    logs = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    with ExitStack() as stack:
        plain, plain_port = start_service(
            "plain", logs, database_url=url, redis_url=None, secret_key=key, cpus=None,
            extra_env=env,
        )
        stack.callback(plain.stop)
        off, off_port = start_service(
            "archive-off", logs, database_url=url, redis_url=None, secret_key=key, cpus=None,
            extra_env={**env, "INBOX_WEBHOOK_ARCHIVE_DAYS": "0"},
        )
        stack.callback(off.stop)
        token = issue_token(
            user_id=owner_id, organization_id=org_id, role="owner", key=key, ttl_seconds=86400
        )
        phone = asyncio.run(make_channel(plain_port, token))
        servers = Server(plain_port, plain.pid), Server(off_port, off.pid)
        warm(list(servers), phone)
        print(f"ingest, archive on against off: {args.pairs} interleaved pairs of runs "
              f"(AB BA ...), {args.webhooks} webhooks a run")
        print(f"{'in flight':>9}  {'figure':<11}{'with':>9}{'without':>10}{'ratio':>12}")
        for in_flight in args.in_flight:
            result = compare(*servers, phone, args.webhooks, in_flight, args.pairs)
            print("\n".join(result.lines()), flush=True)
    expected = SENDERS + args.webhooks * args.pairs * len(args.in_flight)
    kept = asyncio.run(records(url))
    print(f"the archive holds {kept:,} records; the plain server was sent {expected:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", help="a PostgreSQL server to make a database on")
    parser.add_argument("--webhooks", type=int, default=2000, help="webhooks in each run")
    parser.add_argument("--pairs", type=int, default=6, help="pairs of runs per level")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[16])
    args = parser.parse_args()
    if args.postgres_url is None:
        url = async_database_url(f"sqlite:///{Path(tempfile.mkdtemp()) / 'archive.db'}")
        migrate.upgrade(url)
        measure(url, args)
        return
    server = args.postgres_url.rstrip("/")
    name = f"inbox_archive_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        url = async_database_url(f"{server.rsplit('/', 1)[0]}/{name}")
        migrate.upgrade(url)
        measure(url, args)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE "{name}"'))


if __name__ == "__main__":
    main()
