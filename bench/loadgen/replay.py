"""Replay: one client reconnects with `?last_event_id=` and gets N missed events.

The events are made first (signed WhatsApp webhooks); then each run opens a fresh
connection that asks for the last N stored events and times it from the TCP connect
to the frame of the newest one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..drivers import closed_loop
from ..jobspec import Job
from ..wsclient import Tally, WsClient, connect, now_us
from .common import close_injector, make_injector, ws_headers
from .meter import sample, usage

_ID_PREFIX = b'{"id":'


class ReplayClient(WsClient):
    """Counts the stored events (frames with an id) up to `last_id`."""

    def __init__(self, request: bytes, key: bytes, tally: Tally | None, last_id: int) -> None:
        super().__init__(request, key, tally)
        self.last_id_wanted = last_id
        self.ready_at = 0
        self.finished_at = 0
        self.frames = 0
        self.gaps = 0
        self.repeats = 0
        self.previous = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_text(self, data: bytes, start: int, end: int, now: int) -> None:
        if not self.streaming:
            self.ready_at = now
            super().on_text(data, start, end, now)
            self.previous = int(self.ready.result().get("last_event_id") or 0)
            return
        if not data.startswith(_ID_PREFIX, start):
            return  # live-only frames (metrics.update, ...)
        event_id = int(data[start + 6 : data.find(b",", start, end)])
        self.frames += 1
        if event_id <= self.previous:
            self.repeats += 1
            return
        if event_id != self.previous + 1:
            self.gaps += 1
        self.previous = event_id
        if event_id >= self.last_id_wanted and not self.finished.done():
            self.finished_at = now
            self.finished.set_result(None)


async def latest_event_id(job: Job) -> int:
    host, port = job.targets[0]
    probe = await connect(host, port, "/ws", ws_headers(job), None)
    probe.close()
    return int(probe.ready.result().get("last_event_id") or 0)


async def make_events(job: Job) -> tuple[int, int, float]:
    """At least `replay_events` new stored events; returns (first id, last id, rate)."""
    first = await latest_event_id(job)
    injector = make_injector(job)
    started = time.monotonic()
    try:
        last = first
        for attempt in range(5):
            missing = job.replay_events - (last - first)
            if missing <= 0:
                break
            # A known sender's message stores two events (message, conversation).
            count = job.senders if attempt == 0 else 0
            count += missing // 2 + 1
            await closed_loop(injector, f"p{attempt}", job.in_flight,
                              time.monotonic() + 600, None, count)
            last = await latest_event_id(job)
    finally:
        close_injector(injector)
    per_s = len(injector.acked) / (time.monotonic() - started)
    return first, last, per_s


async def run(job: Job) -> dict[str, Any]:
    _, last, populate_rate = await make_events(job)
    after = last - job.replay_events
    host, port = job.targets[0]
    runs = []
    for _ in range(job.replay_runs):
        start = sample(job)
        began = now_us()
        client = await connect(
            host, port, f"/ws?last_event_id={after}", ws_headers(job), None,
            factory=lambda request, key, tally: ReplayClient(request, key, tally, last),
        )
        assert isinstance(client, ReplayClient)
        try:
            await asyncio.wait_for(client.finished, 120)
        finally:
            client.close()
        end = sample(job)
        runs.append({
            "events": client.frames,
            "seconds": round((client.finished_at - began) / 1e6, 4),
            "ready_ms": round((client.ready_at - began) / 1e3, 2),
            "events_per_s": round(client.frames / ((client.finished_at - began) / 1e6), 1),
            "gaps": client.gaps,
            "repeats": client.repeats,
            "server_cpu_us_per_event": round(
                (end.server_cpu - start.server_cpu) * 1e6 / max(client.frames, 1), 2
            ),
            "usage": usage(job, start, end),
        })
        await asyncio.sleep(0.5)
    return {"replay_events": job.replay_events, "populate_webhooks_per_s": round(populate_rate, 1),
            "runs": runs}
