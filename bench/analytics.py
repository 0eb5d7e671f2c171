"""Analytics at scale: each report's latency over 30 days of a million messages, and
ingest with and without the rollups.

    .venv/bin/python -m bench.analytics                       # SQLite
    .venv/bin/python -m bench.analytics --postgres-url postgresql://root@127.0.0.1:5432/postgres

One organization holds 100,000 conversations and 1,000,000 messages over 30 days
(four channels, ten agents, replies, private notes, closings, 100,000 contacts and
20,000 leads); another holds a tenth of that beside it. The rollups are rebuilt from
the messages (the figure is the rebuild's time), then each report is asked
--requests times through the whole ASGI app (a 30-day range; trends per day and per
hour), and --webhooks signed WhatsApp deliveries are posted one after another with
the rollups written, then without, alternately. A benchmark, not a test: it prints
p50/p95 per call and messages a second, and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import insert
from starlette.testclient import TestClient

from connectors.signatures import meta_signature
from inbox import migrate
from inbox.app import create_app
from inbox.db import Database
from inbox.models import Channel, Contact, Conversation, Lead, Message, table_of
from inbox.security import issue_token
from inbox.services import accounts, rollups
from inbox.settings import Settings, async_database_url

KEY = "bench-analytics-signing-key-long-enough"
DAYS = 30
CHUNK = 5_000


async def _org(db: Database, name: str, agents: int) -> tuple[int, list[int]]:
    org = await accounts.create_organization(db, name)
    assert org.id is not None
    users = []
    for n in range(agents + 1):
        user = await accounts.create_user(
            db,
            org.id,
            email=f"{'owner' if n == 0 else 'agent'}{n}@{name.lower()}.example",
            password="bench-password",
            role="owner" if n == 0 else "agent",
            name=f"Agent {n}",
        )
        users.append(user.id)
    return org.id, users


async def populate(
    db: Database, org_id: int, users: list[int], conversations: int, start: datetime
) -> None:
    """``conversations`` conversations of ten messages each, spread over DAYS days."""
    rng = random.Random(org_id)
    agents = users[1:]
    async with db.session() as session:
        channels = [
            Channel(organization_id=org_id, kind=kind, name=f"{kind} {n}")
            for n, kind in enumerate(("whatsapp", "sms", "instagram", "generic"))
        ]
        session.add_all(channels)
        await session.commit()
        channel_ids = [c.id for c in channels]
    span = DAYS * 86400 - 3600
    for first in range(0, conversations, CHUNK // 10):
        count = min(CHUNK // 10, conversations - first)
        opened = [start + timedelta(seconds=rng.randrange(span)) for _ in range(count)]
        async with db.engine.begin() as conn:
            contact_rows = [
                {
                    "organization_id": org_id,
                    "name": f"c{first + i}",
                    "tags": [],
                    "custom_fields": {},
                    "status": "lead",
                    "created_at": at,
                    "updated_at": at,
                }
                for i, at in enumerate(opened)
            ]
            contact_ids = (
                (
                    await conn.execute(
                        insert(table_of(Contact)).returning(table_of(Contact).c.id), contact_rows
                    )
                )
                .scalars()
                .all()
            )
            conv_rows, plans = [], []
            for contact_id, at in zip(contact_ids, opened, strict=True):
                agent = rng.choice(agents)
                wait = rng.randrange(30, 7200)
                closed = (
                    at + timedelta(seconds=rng.randrange(3600, 86400))
                    if rng.random() < 0.6
                    else None
                )
                conv_rows.append(
                    {
                        "organization_id": org_id,
                        "contact_id": contact_id,
                        "channel_id": rng.choice(channel_ids),
                        "status": "closed" if closed else "open",
                        "assignee_id": agent,
                        "labels": [],
                        "unread_count": 0,
                        "first_response_at": at + timedelta(seconds=wait),
                        "first_response_seconds": float(wait),
                        "first_responder_id": agent,
                        "closed_at": closed,
                        "resolution_seconds": (closed - at).total_seconds() if closed else None,
                        "created_at": at,
                        "updated_at": closed or at,
                    }
                )
                plans.append((at, wait, agent))
            conv_ids = (
                await conn.execute(
                    insert(table_of(Conversation)).returning(
                        table_of(Conversation).c.id, table_of(Conversation).c.channel_id
                    ),
                    conv_rows,
                )
            ).all()
            messages = []
            for (conv_id, channel_id), contact_id, (at, wait, agent) in zip(
                conv_ids, contact_ids, plans, strict=True
            ):
                for i in range(10):
                    inbound = i in (0, 1, 3, 5, 7, 8)
                    when = at + timedelta(seconds=wait if i == 2 else i * 600)
                    messages.append(
                        {
                            "organization_id": org_id,
                            "conversation_id": conv_id,
                            "channel_id": channel_id,
                            "direction": "inbound" if inbound else "outbound",
                            "sender_contact_id": contact_id if inbound else None,
                            "sender_user_id": None if inbound else agent,
                            "private": i == 9,
                            "content": "hello there",
                            "content_type": "text",
                            "attachments": [],
                            "platform_data": {},
                            "status": "received" if inbound else "sent",
                            "attempts": 0,
                            "ordered_at": when,
                            "created_at": when,
                            "updated_at": when,
                        }
                    )
            await conn.execute(insert(table_of(Message)), messages)
            leads = [
                {
                    "organization_id": org_id,
                    "contact_id": cid,
                    "name": "lead",
                    "status": "converted" if n % 2 else "new",
                    "created_at": at,
                    "updated_at": at,
                    "converted_at": at + timedelta(hours=2) if n % 2 else None,
                }
                for n, (cid, at) in enumerate(zip(contact_ids, opened, strict=True))
                if n % 5 == 0
            ]
            await conn.execute(insert(table_of(Lead)), leads)


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _webhook(phone_number_id: str, n: int) -> bytes:
    sender = f"1650555{n % 5000:04d}"
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550000000",
                                    "phone_number_id": phone_number_id,
                                },
                                "contacts": [{"profile": {"name": f"Sender {n}"}, "wa_id": sender}],
                                "messages": [
                                    {
                                        "from": sender,
                                        "id": f"wamid.bench.{uuid.uuid4().hex}",
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": "Does it come in another color?"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    )


@contextmanager
def _without_rollups(off: bool) -> Iterator[None]:
    original = rollups.count_messages

    async def nothing(*_: Any, **__: Any) -> None:
        return None

    if off:
        rollups.count_messages = nothing  # type: ignore[assignment]
    try:
        yield
    finally:
        rollups.count_messages = original  # type: ignore[assignment]


def measure(url: str, conversations: int, requests: int, webhooks: int) -> None:
    db = Database(url)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)

    async def build() -> tuple[int, int]:
        org_id, users = await _org(db, "Busy", 10)
        other_id, other_users = await _org(db, "Beside", 3)
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

    org_id, owner_id = asyncio.run(build())
    settings = Settings(
        env="test", database_url=url, secret_key=KEY, redis_url=None, allowed_origins=[]
    )
    token = issue_token(
        user_id=owner_id, organization_id=org_id, role="owner", key=KEY, ttl_seconds=3600
    )
    window = {"from": start.isoformat(), "to": end.isoformat(), "timezone": "Europe/Berlin"}
    calls = {
        "overview": ("/api/analytics/overview", window),
        "trends day": ("/api/analytics/trends", {**window, "metric": "messages_received"}),
        "trends hour": (
            "/api/analytics/trends",
            {**window, "metric": "messages_sent", "interval": "hour"},
        ),
        "trends first response": (
            "/api/analytics/trends",
            {**window, "metric": "first_response_seconds"},
        ),
        "agents": ("/api/analytics/agents", window),
    }
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        print(f"\n{'call (30 days)':<24}{'p50 ms':>9}{'p95 ms':>9}")
        for name, (path, params) in calls.items():
            client.get(path, params=params).raise_for_status()  # warm
            took = []
            for _ in range(requests):
                began = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                took.append((time.perf_counter() - began) * 1000)
            print(f"{name:<24}{_quantile(took, 0.5):>9.1f}{_quantile(took, 0.95):>9.1f}")
        phone = f"777{random.randrange(10**8):08d}"
        r = client.post(
            "/api/channels",
            json={
                "kind": "whatsapp",
                "name": "bench",
                "settings": {
                    "phone_number_id": phone,
                    "access_token": "t",
                    "app_secret": "bench-secret",
                    "verify_token": "v",
                },
            },
        )
        r.raise_for_status()
        rates: dict[bool, list[float]] = {True: [], False: []}
        for n in range(20):  # warm the channel, its contacts' lookups and the writer
            body = _webhook(phone, 10**6 + n)
            client.post(
                "/webhooks/whatsapp",
                content=body,
                headers={
                    "X-Hub-Signature-256": meta_signature("bench-secret", body),
                    "Content-Type": "application/json",
                },
            ).raise_for_status()
        for round_ in range(6):
            off = round_ % 2 == 1
            bodies = [_webhook(phone, round_ * webhooks + n) for n in range(webhooks)]
            with _without_rollups(off):
                began = time.perf_counter()
                for body in bodies:
                    client.post(
                        "/webhooks/whatsapp",
                        content=body,
                        headers={
                            "X-Hub-Signature-256": meta_signature("bench-secret", body),
                            "Content-Type": "application/json",
                        },
                    ).raise_for_status()
                rates[not off].append(webhooks / (time.perf_counter() - began))
        with_, without = statistics.median(rates[True]), statistics.median(rates[False])
        print(
            f"\ningest, one delivery at a time: {with_:.0f} msg/s with rollups, "
            f"{without:.0f} without ({(with_ / without - 1) * 100:+.1f} %)"
        )


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
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--webhooks", type=int, default=300)
    args = parser.parse_args()
    if args.postgres_url is None:
        url = async_database_url(f"sqlite:///{Path(tempfile.mkdtemp()) / 'analytics.db'}")
        migrate.upgrade(url)
        measure(url, args.conversations, args.requests, args.webhooks)
        return
    server = args.postgres_url.rstrip("/")
    name = f"inbox_bench_analytics_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        url = async_database_url(f"{server.rsplit('/', 1)[0]}/{name}")
        migrate.upgrade(url)
        measure(url, args.conversations, args.requests, args.webhooks)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
