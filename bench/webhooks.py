"""`python -m bench.webhooks`: outgoing webhooks to a fast local receiver.

Starts one `inbox serve` on a fresh SQLite database (or `--database-url`) and a
receiver in a process of its own (`bench.webhook_receiver`: asyncio and httptools,
answering 204 at once) that notes when each delivery arrives. Events are contacts
made through the REST API, `--concurrency` requests at a time (each emits
`contact.created`). Two measures:

1. ingest: `--chunks` rounds of `--events` / `--chunks` events with no endpoint, then
   as many with one endpoint subscribed to `contact.created` (made for the round and
   deleted once its deliveries arrived); interleaved, so that other work on the machine
   weighs on both alike. It gives the ingest rate without and with a webhook, the
   server's CPU time per event without and with one (until its delivery arrived), and
   the lag from each event's commit (its envelope's `timestamp`) to its arrival.
2. backlog: the endpoint turned off, `--events` events made, the endpoint turned on
   again: it catches up from its cursor, and deliveries/s is the backlog over the time
   it took to drain; with the server's CPU time per delivery (less at the mercy of
   other work on the machine than the rates).

`--compare DIR` runs a baseline tree (e.g. `git archive <commit> | tar -x -C DIR`) and
this one (or `--checkout`) alternately, `--rounds` times each (ABBA order), and prints
the medians and the ratios of this tree's figures to the baseline's: the figures to
quote on a busy machine.

    .venv/bin/python -m bench.webhooks                      # 5000 events
    .venv/bin/python -m bench.webhooks --events 2000 --database-url postgresql://...
    .venv/bin/python -m bench.webhooks --compare /tmp/base --rounds 3 --events 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from .procstat import load_average, process_cpu_seconds
from .servers import HOST, REPO, Process, free_port, start_service, wait_for_port


class Receiver:
    """The receiver process, and what it has seen."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "bench.webhook_receiver", str(self.port)]
        self.process = Process("receiver", command, log_dir, cwd=REPO)
        wait_for_port(self.port)
        self.http = httpx.Client(base_url=f"http://{HOST}:{self.port}")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def count(self) -> int:
        return int(self.http.get("/count").json())

    def arrivals(self) -> list[tuple[float, float]]:
        return [(a, s) for a, s in self.http.get("/arrivals").json()]

    def wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.http.close()
        self.process.stop()


async def make_contacts(base: str, token: str, n: int, concurrency: int) -> float:
    """Seconds to make ``n`` contacts, ``concurrency`` requests at a time."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                r = await client.post("/api/contacts", json={"name": f"Bench {i}"})
                r.raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(args: argparse.Namespace, tree: Path | None) -> dict[str, Any]:
    """One run of both measures against the service of ``tree`` (None: this one)."""
    work = Path(tempfile.mkdtemp(prefix="inbox-bench-webhooks-"))
    database_url = args.database_url or f"sqlite:///{work / 'inbox.db'}"
    secret_key = "bench-webhooks-signing-key-0123456789"
    source = {"PYTHONPATH": str(tree.resolve())} if tree is not None else {}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INBOX_")},
        **source,
        "INBOX_ENV": "production",
        "INBOX_DATABASE_URL": database_url,
        "INBOX_SECRET_KEY": secret_key,
        "INBOX_SECRETS_KEY": Fernet.generate_key().decode(),
    }
    made = subprocess.run(
        [sys.executable, "-m", "bench.fixtures"],
        env=env,
        capture_output=True,
        check=True,
        cwd=tree or REPO,
    )
    token = json.loads(made.stdout.decode().strip().splitlines()[-1])["token"]
    receiver = Receiver(work)
    server, port = start_service(
        "inbox-webhooks",
        work,
        database_url=database_url,
        redis_url=None,
        secret_key=secret_key,
        cpus=None,
        extra_env={
            **source,
            "INBOX_SECRETS_KEY": env["INBOX_SECRETS_KEY"],
            "INBOX_WEBHOOK_ALLOW_PRIVATE": "true",
            "INBOX_LOG_LEVEL": "warning",
            # The load comes from one credential, far past any per-user budget.
            "INBOX_RATE_LIMITS": "off",
            **(
                {"INBOX_WEBHOOK_CONCURRENCY": str(args.webhook_concurrency)}
                if args.webhook_concurrency
                else {}
            ),
        },
    )
    base = f"http://{HOST}:{port}"
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    n, chunk = args.events, max(1, args.events // args.chunks)
    subscription = {"url": receiver.url, "events": ["contact.created"]}
    try:
        without = with_hook = cpu_without = cpu_with = 0.0
        expected = 0
        for _ in range(args.chunks):
            cpu = process_cpu_seconds(server.pid)
            without += asyncio.run(make_contacts(base, token, chunk, args.concurrency))
            cpu_without += process_cpu_seconds(server.pid) - cpu
            hook = api.post("/api/webhooks", json=subscription).json()
            cpu = process_cpu_seconds(server.pid)
            with_hook += asyncio.run(make_contacts(base, token, chunk, args.concurrency))
            expected += chunk
            receiver.wait(expected, 120)
            # Until the last delivery arrived: the whole cost of the events' webhooks.
            cpu_with += process_cpu_seconds(server.pid) - cpu
            api.delete(f"/api/webhooks/{hook['id']}")
        lags = [arrived - stamp for arrived, stamp in receiver.arrivals()]

        hook = api.post("/api/webhooks", json={**subscription, "active": False}).json()
        asyncio.run(make_contacts(base, token, n, args.concurrency))
        seen = receiver.count()
        resumed = time.time()
        cpu_before = process_cpu_seconds(server.pid)
        api.patch(f"/api/webhooks/{hook['id']}", json={"active": True})
        receiver.wait(seen + n, 300)
        cpu_spent = process_cpu_seconds(server.pid) - cpu_before
        drained = receiver.arrivals()[seen:]
        drain_seconds = max(a for a, _ in drained) - resumed if drained else float("nan")
        return {
            "tree": str(tree) if tree is not None else "this tree",
            "database": "postgresql" if database_url.startswith("postg") else "sqlite",
            "events": n,
            "ingest_per_s_without_webhooks": round(chunk * args.chunks / without, 1),
            "ingest_per_s_with_a_webhook": round(chunk * args.chunks / with_hook, 1),
            "ingest_slowdown_pct": round((with_hook / without - 1) * 100, 1),
            "server_cpu_ms_per_event_without": round(cpu_without / (chunk * args.chunks) * 1000, 3),
            "server_cpu_ms_per_event_with": round(cpu_with / (chunk * args.chunks) * 1000, 3),
            # The server's CPU per ingested event, webhook included, over that without:
            # what the webhook costs ingest when the server's core is the limit.
            "ingest_cpu_overhead_pct": round((cpu_with / cpu_without - 1) * 100, 1),
            "delivered_while_ingesting": len(lags),
            "lag_ms_median": round(statistics.median(lags) * 1000, 1),
            "lag_ms_p95": round(percentile(lags, 0.95) * 1000, 1),
            "lag_ms_max": round(max(lags) * 1000, 1),
            "backlog_delivered": len(drained),
            "backlog_deliveries_per_s": round(len(drained) / drain_seconds, 1),
            "server_cpu_ms_per_delivery": round(cpu_spent / max(1, len(drained)) * 1000, 3),
            "load_average": load_average(),
        }
    finally:
        api.close()
        server.stop()
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)


COMPARED = (
    "ingest_per_s_without_webhooks",
    "ingest_per_s_with_a_webhook",
    "ingest_slowdown_pct",
    "server_cpu_ms_per_event_without",
    "server_cpu_ms_per_event_with",
    "lag_ms_median",
    "lag_ms_p95",
    "backlog_deliveries_per_s",
    "server_cpu_ms_per_delivery",
    "ingest_cpu_overhead_pct",
)


def compare(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this": []}
    for round_ in range(args.rounds):
        order = [("baseline", args.compare), ("this", args.checkout)]
        for label, tree in order if round_ % 2 == 0 else reversed(order):
            result = run(args, tree)
            print(json.dumps({label: result}), file=sys.stderr)
            runs[label].append(result)
    medians = {
        label: {key: statistics.median(r[key] for r in results) for key in COMPARED}
        for label, results in runs.items()
    }
    ratios = {
        key: round(medians["this"][key] / medians["baseline"][key], 2)
        for key in COMPARED
        if medians["baseline"][key] and not key.endswith("_pct")
    }
    return {
        "rounds": args.rounds,
        "events": args.events,
        "medians": medians,
        "this_over_baseline": ratios,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.webhooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--chunks", type=int, default=3, help="ingest rounds without/with")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--database-url", default=None)
    p.add_argument(
        "--webhook-concurrency", type=int, default=None, help="INBOX_WEBHOOK_CONCURRENCY"
    )
    p.add_argument(
        "--checkout",
        type=Path,
        default=None,
        help="run the service from this source tree instead of this one",
    )
    p.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="a baseline source tree, run alternately with this one",
    )
    p.add_argument("--rounds", type=int, default=3, help="runs of each tree with --compare")
    args = p.parse_args(argv)
    if args.database_url and args.compare:
        p.error("--compare makes a fresh SQLite database per run; leave out --database-url")
    result = compare(args) if args.compare else run(args, args.checkout)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
