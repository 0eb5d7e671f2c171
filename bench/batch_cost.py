"""`python -m bench.batch_cost [--postgres-url URL]`: what one group commit costs.

Runs the ingest service layer in this process, without HTTP, against a fresh
database (a temporary SQLite file, or a new PostgreSQL database that is dropped
afterwards), and prints wall and CPU time per group commit of 1, 4, 16 and 32
plain-message deliveries from known senders. The difference between the sizes
separates what a commit costs whatever its size (statements, round trips, the
commit) from what each delivery adds.

On PostgreSQL it first prints the floor under every commit's wall time: one round
trip (``SELECT 1``) and one durable one-row transaction (BEGIN, INSERT, COMMIT),
measured with the driver alone.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from connectors.types import InboundMessage
from inbox import migrate
from inbox.db import Database
from inbox.models import Channel
from inbox.services import accounts
from inbox.services.group_commit import GroupCommit
from inbox.services.ingest import ingest
from inbox.services.outbox import NullSink
from inbox.settings import async_database_url

SENDERS = 192
SIZES = (1, 4, 16, 32)
DELIVERIES_PER_SIZE = 800


async def measure(url: str) -> None:
    db = Database(url)
    org = await accounts.create_organization(db, "Batch cost")
    channel = Channel(
        organization_id=org.id, kind="whatsapp", name="bench", routing_key="1", settings={}
    )
    async with db.session() as session:
        session.add(channel)
        await session.commit()
    sent = 0

    def message(sender: int) -> InboundMessage:
        nonlocal sent
        sent += 1
        return InboundMessage(
            platform="whatsapp",
            channel_key="1",
            sender_id=str(sender),
            external_id=f"wamid.{sent}",
            timestamp=datetime.now(UTC),
            content="hello",
            sender_name="Bench",
            raw={"id": sent},
        )

    async def commit(size: int, first: int) -> None:
        # Queued together before the group commit runs: one commit.
        await asyncio.gather(*(ingest(commits, channel, [message(first + n)]) for n in range(size)))

    try:
        async with GroupCommit(db, NullSink()) as commits:
            # Every sender known and every conversation open: the steady state.
            for first in range(0, SENDERS, 32):
                await commit(32, first)
            for size in SIZES:
                rounds = DELIVERIES_PER_SIZE // size
                wall, cpu = time.perf_counter(), time.process_time()
                for n in range(rounds):
                    await commit(size, (n * size) % (SENDERS - size))
                wall_ms = (time.perf_counter() - wall) / rounds * 1e3
                cpu_ms = (time.process_time() - cpu) / rounds * 1e3
                print(
                    f"{db.dialect:<10} {size:>2} deliveries: {wall_ms:6.2f} ms wall, "
                    f"{cpu_ms:6.2f} ms CPU per commit ({cpu_ms / size * 1e3:5.0f} µs per delivery)"
                )
    finally:
        await db.dispose()


async def postgres_latency(url: str, rounds: int = 300) -> None:
    connection = await asyncpg.connect(url)
    try:
        # A real table: a temporary one is not written to the WAL, so its commit waits for no disk.
        await connection.execute("CREATE TABLE probe (n integer)")
        start = time.perf_counter()
        for _ in range(rounds):
            await connection.fetchval("SELECT 1")
        trip_ms = (time.perf_counter() - start) / rounds * 1e3
        start = time.perf_counter()
        for n in range(rounds):
            async with connection.transaction():
                await connection.execute("INSERT INTO probe VALUES ($1)", n)
        commit_ms = (time.perf_counter() - start) / rounds * 1e3
    finally:
        await connection.close()
    print(
        f"postgresql round trip (SELECT 1): {trip_ms:.2f} ms wall; "
        f"one-row transaction (BEGIN, INSERT, COMMIT): {commit_ms:.2f} ms wall"
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
    args = parser.parse_args()
    if args.postgres_url is None:
        url = async_database_url(f"sqlite:///{Path(tempfile.mkdtemp()) / 'batch.db'}")
        migrate.upgrade(url)
        asyncio.run(measure(url))
        return
    server = args.postgres_url.rstrip("/")
    name = f"inbox_batch_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        plain_url = f"{server.rsplit('/', 1)[0]}/{name}"
        asyncio.run(postgres_latency(plain_url))
        url = async_database_url(plain_url)
        migrate.upgrade(url)
        asyncio.run(measure(url))
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE "{name}"'))


if __name__ == "__main__":
    main()
