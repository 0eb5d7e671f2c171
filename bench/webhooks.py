"""`python -m bench.webhooks`: outgoing webhooks to a fast local receiver.

Starts one `inbox serve` on a fresh SQLite database (or `--database-url`) and a
receiver (Starlette on uvicorn, in this process, answering 200 at once) that notes when
each delivery arrives. Three phases, each of `--events` events (a contact made through
the REST API, `--concurrency` requests at a time, which emits `contact.created`):

1. no endpoint: the ingest rate without webhooks;
2. one endpoint subscribed to `contact.created`: the ingest rate again, and the lag from
   each event's commit (its envelope's `timestamp`) to its arrival at the receiver;
3. the endpoint turned off, the events made, the endpoint turned on again: it catches
   up from its cursor, and deliveries/s is the backlog over the time it took to drain.

    .venv/bin/python -m bench.webhooks                     # 5000 events a phase
    .venv/bin/python -m bench.webhooks --events 2000 --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .procstat import load_average, process_cpu_seconds
from .servers import HOST, free_port, start_service, wait_for_port


class Receiver:
    """Notes (arrival time, event timestamp) for each delivery; answers 200 at once."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float]] = []
        self.port = free_port()

        async def hook(request: Request) -> Response:
            body = json.loads(await request.body())
            stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
            self.arrivals.append((time.time(), stamp.timestamp()))
            return Response(b"", status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        config = uvicorn.Config(app, host=HOST, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--database-url", default=None)
    p.add_argument(
        "--webhook-concurrency", type=int, default=None, help="INBOX_WEBHOOK_CONCURRENCY"
    )
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="inbox-bench-webhooks-"))
    database_url = args.database_url or f"sqlite:///{work / 'inbox.db'}"
    secret_key = "bench-webhooks-signing-key-0123456789"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INBOX_")},
        "INBOX_ENV": "production",
        "INBOX_DATABASE_URL": database_url,
        "INBOX_SECRET_KEY": secret_key,
        "INBOX_SECRETS_KEY": Fernet.generate_key().decode(),
    }
    made = subprocess.run(
        [sys.executable, "-m", "bench.fixtures"], env=env, capture_output=True, check=True
    )
    token = json.loads(made.stdout.decode().strip().splitlines()[-1])["token"]
    receiver = Receiver()
    server, port = start_service(
        "inbox-webhooks",
        work,
        database_url=database_url,
        redis_url=None,
        secret_key=secret_key,
        cpus=None,
        extra_env={
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
    n = args.events
    try:
        without = asyncio.run(make_contacts(base, token, n, args.concurrency))
        hook = api.post(
            "/api/webhooks", json={"url": receiver.url, "events": ["contact.created"]}
        ).json()
        with_hook = asyncio.run(make_contacts(base, token, n, args.concurrency))
        receiver.wait(n, 120)
        lags = [arrived - stamp for arrived, stamp in receiver.arrivals]
        api.patch(f"/api/webhooks/{hook['id']}", json={"active": False})
        asyncio.run(make_contacts(base, token, n, args.concurrency))
        resumed = time.time()
        cpu_before = process_cpu_seconds(server.pid)
        api.patch(f"/api/webhooks/{hook['id']}", json={"active": True})
        receiver.wait(2 * n, 300)
        cpu_spent = process_cpu_seconds(server.pid) - cpu_before
        drained = receiver.arrivals[n:]
        drain_seconds = max(a for a, _ in drained) - resumed if drained else float("nan")
        result: dict[str, Any] = {
            "database": "postgresql" if database_url.startswith("postg") else "sqlite",
            "events_per_phase": n,
            "ingest_per_s_without_webhooks": round(n / without, 1),
            "ingest_per_s_with_a_webhook": round(n / with_hook, 1),
            "ingest_slowdown_pct": round((with_hook / without - 1) * 100, 1),
            "lag_ms_median": round(statistics.median(lags) * 1000, 1),
            "lag_ms_p95": round(percentile(lags, 0.95) * 1000, 1),
            "lag_ms_max": round(max(lags) * 1000, 1),
            "backlog_delivered": len(drained),
            "backlog_deliveries_per_s": round(len(drained) / drain_seconds, 1),
            # Less at the mercy of other work on the machine than the rates.
            "server_cpu_ms_per_delivery": round(cpu_spent / max(1, len(drained)) * 1000, 2),
            "load_average": load_average(),
        }
        print(json.dumps(result, indent=2))
    finally:
        api.close()
        server.stop()
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
