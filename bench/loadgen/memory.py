"""Memory: the servers' resident memory per idle, subscribed connection."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from ..jobspec import Job
from ..procstat import process_rss_kib
from ..wsclient import close_all, connect_many
from .common import EVENTS_PATH, address_of, ws_headers
from .meter import sample, usage

WARM_UP_CLIENTS = 20


def servers_rss_kib(job: Job) -> int:
    return sum(process_rss_kib(pid) for pid in job.server_pids)


async def run(job: Job) -> dict[str, Any]:
    headers = ws_headers(job)
    # First connections pay for lazy set-up (imports, pools): not per-connection memory.
    warm = await connect_many(WARM_UP_CLIENTS, address_of(job), EVENTS_PATH, headers, None)
    await close_all(warm)
    await asyncio.sleep(job.settle)
    gc.collect()
    before_kib = servers_rss_kib(job)
    start = sample(job)
    clients = await connect_many(
        job.clients, address_of(job), EVENTS_PATH, headers, None, concurrency=200
    )
    try:
        connected = sample(job)
        await asyncio.sleep(job.settle)
        after_kib = servers_rss_kib(job)
    finally:
        await close_all(clients)
    connect_usage = usage(job, start, connected)
    return {
        "clients": len(clients),
        "rss_before_kib": before_kib,
        "rss_after_kib": after_kib,
        "kib_per_connection": round((after_kib - before_kib) / len(clients), 2),
        "connect_s": connect_usage["wall_s"],
        "server_cpu_ms_per_connect": round(connect_usage["server_cpu_s"] * 1e3 / len(clients), 3),
        "connect": connect_usage,
    }
