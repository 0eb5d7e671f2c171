"""`python -m bench.archive_cost [--postgres-url URL]`: what the webhook archive adds to
the group commit that stores the deliveries it records.

Runs the ingest service layer in this process, without HTTP (as `bench.batch_cost`
does), against a fresh database, and stores commits of ``--size`` WhatsApp deliveries
alternately with and without their archive records (the request as the route takes it
down: a 1.3 KiB body and a platform's headers), ``--rounds`` times each, in ABAB order
so that anything else on the machine weighs on both alike. It prints the medians of
the wall time per commit and of the CPU time per delivery, with and without, and the
differences: the archive's own cost, to set against a whole webhook's (`bench --only
ingest`, "server µs/webhook").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from connectors.types import InboundMessage
from inbox import migrate
from inbox.db import Database
from inbox.models import Channel
from inbox.services import accounts
from inbox.services.group_commit import GroupCommit
from inbox.services.ingest import ingest
from inbox.services.outbox import NullSink
from inbox.services.webhook_archive import Delivery, kept_headers
from inbox.services.webhook_archive.record import now
from inbox.settings import async_database_url

from .batch_cost import _admin

SENDERS = 192
HEADERS = [
    ("host", "inbox.example.com"),
    ("user-agent", "facebookexternalua"),
    ("content-type", "application/json"),
    ("content-length", "1342"),
    ("accept", "*/*"),
    ("accept-encoding", "deflate, gzip"),
    ("x-hub-signature", "sha1=" + "0" * 40),
    ("x-hub-signature-256", "sha256=" + "0" * 64),
    ("x-forwarded-for", "173.252.127.1"),
    ("x-forwarded-proto", "https"),
]


def body() -> bytes:
    """A WhatsApp text delivery's size and shape."""
    message = {"from": "16505551234", "id": f"wamid.{0:040d}", "timestamp": "1749416383",
               "text": {"body": "Hello, I would like to know more about your offer " * 3},
               "type": "text"}
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "16505553333", "phone_number_id": "1"},
             "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
             "messages": [message]}
    entry = {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


async def measure(url: str, size: int, rounds: int) -> None:
    db = Database(url)
    org = await accounts.create_organization(db, "Archive cost")
    channel = Channel(
        organization_id=org.id, kind="whatsapp", name="bench", routing_key="1", settings={}
    )
    async with db.session() as session:
        session.add(channel)
        await session.commit()
    sent = 0
    # Made once: the route has the request's body in hand; taking it down is the cost.
    raw = body()

    def message(sender: int) -> InboundMessage:
        nonlocal sent
        sent += 1
        return InboundMessage(
            platform="whatsapp", channel_key="1", sender_id=str(sender),
            external_id=f"wamid.{sent}", timestamp=datetime.now(UTC), content="hello",
            sender_name="Bench", raw={"id": sent},
        )

    def delivery() -> Delivery:
        # What `web.webhook_archive.arrived` takes down for each request.
        return Delivery(
            kind="whatsapp", method="POST", url="https://inbox.example.com/webhooks/whatsapp",
            headers=kept_headers(HEADERS), body=raw, client="173.252.127.1",
            received_at=now(),
        )

    async def commit(first: int, archived: bool) -> None:
        await asyncio.gather(*(
            ingest(commits, channel, [message(first + n)],
                   archive=delivery() if archived else None)
            for n in range(size)
        ))

    figures: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    try:
        async with GroupCommit(db, NullSink()) as commits:
            for first in range(0, SENDERS, 32):  # every sender known: the steady state
                await commit(first, False)
            for n in range(rounds * 2):
                archived = n % 2 == 1
                batches = 50
                wall, cpu = time.perf_counter(), time.process_time()
                for b in range(batches):
                    await commit((b * size) % (SENDERS - size), archived)
                figures[archived].append((
                    (time.perf_counter() - wall) / batches * 1e3,
                    (time.process_time() - cpu) / batches / size * 1e6,
                ))
    finally:
        await db.dispose()
    medians = {
        archived: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for archived, runs in figures.items()
    }
    for archived, (wall_ms, cpu_us) in medians.items():
        print(f"{db.dialect:<10} {'with' if archived else 'without':>7} archive: "
              f"{wall_ms:6.2f} ms wall per commit of {size}, {cpu_us:5.0f} µs CPU per delivery")
    (wall_off, cpu_off), (wall_on, cpu_on) = medians[False], medians[True]
    print(f"{db.dialect:<10} the archive adds {wall_on - wall_off:+.2f} ms per commit "
          f"({(wall_on / wall_off - 1) * 100:+.1f} %), {cpu_on - cpu_off:+.0f} µs CPU per "
          f"delivery")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", help="a PostgreSQL server to make a database on")
    parser.add_argument("--size", type=int, default=16, help="deliveries per commit")
    parser.add_argument("--rounds", type=int, default=7, help="runs of each, alternated")
    args = parser.parse_args()
    if args.postgres_url is None:
        url = async_database_url(f"sqlite:///{Path(tempfile.mkdtemp()) / 'archive.db'}")
        migrate.upgrade(url)
        asyncio.run(measure(url, args.size, args.rounds))
        return
    server = args.postgres_url.rstrip("/")
    name = f"inbox_archive_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        url = async_database_url(f"{server.rsplit('/', 1)[0]}/{name}")
        migrate.upgrade(url)
        asyncio.run(measure(url, args.size, args.rounds))
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE "{name}"'))


if __name__ == "__main__":
    main()
