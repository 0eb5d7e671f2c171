"""Ingest: signed webhooks persisted and acknowledged, as fast as the server answers.

A closed loop of `in_flight` concurrent requests on keep-alive connections for
`duration` seconds; optionally with subscribed clients that receive every message.
"""

from __future__ import annotations

import time
from typing import Any

from ..drivers import closed_loop, wait_until
from ..jobspec import Job
from ..stats import latency_summary_ms
from ..wsclient import Tally, close_all, connect_many
from .common import EVENTS_PATH, address_of, close_injector, make_injector, ws_headers
from .fanout import count_lost
from .meter import sample, servers_quiet, usage


async def run(job: Job) -> dict[str, Any]:
    waited = await servers_quiet(job)
    tally = Tally()
    clients = []
    if job.clients:
        clients = await connect_many(
            job.clients, address_of(job), EVENTS_PATH, ws_headers(job), tally
        )
    tally.readers = clients
    injector = make_injector(job)
    try:
        # Every sender once: the measured webhooks are known senders' messages.
        count = max(job.senders, job.warmup_events)
        await closed_loop(injector, "w", job.in_flight, time.monotonic() + 120, None, count)
        if not injector.acked:
            raise RuntimeError(f"no warm-up webhook was accepted: {injector.last_error}")
        await wait_until(
            lambda: tally.deliveries >= len(injector.acked) * tally.live_readers, 10.0
        )
        tally.start_phase("m")
        injector.reset()
        start = sample(job)
        await closed_loop(injector, "m", job.in_flight, start.wall + job.duration, None,
                          10_000_000)
        answered = sample(job)
        drained = await wait_until(
            lambda: tally.deliveries >= len(injector.acked) * tally.live_readers,
            job.drain_timeout,
            step=0.02,
        )
        end = sample(job)
    finally:
        tally.closing = True
        close_injector(injector)
        await close_all(clients)
    acked = len(injector.acked)
    elapsed = answered.wall - start.wall
    whole = usage(job, start, end)
    return {
        "waited_for_quiet_s": waited,
        "subscribers": len(clients),
        "concurrency": job.in_flight,
        "webhooks_acked": acked,
        "webhooks_per_s": round(acked / elapsed, 1),
        "errors": injector.errors,
        "last_error": injector.last_error,
        "ack_ms": latency_summary_ms(injector.ack_latencies_us),
        "server_cpu_us_per_webhook": round(whole["server_cpu_s"] * 1e6 / acked, 1)
        if acked
        else None,
        "deliveries": tally.deliveries,
        "lost": count_lost(tally, injector.acked) if clients else None,
        "duplicates": tally.duplicates if clients else None,
        "out_of_order": tally.out_of_order if clients else None,
        "drained": drained,
        "delivery_ms": latency_summary_ms(tally.latencies_us) if clients else None,
        "window": usage(job, start, answered),
        "whole_run": whole,
    }
