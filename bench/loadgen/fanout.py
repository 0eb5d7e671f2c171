"""Fan-out: C clients of one organization, events caused at a rate or in a closed loop.

One run: connect the clients, warm up (every sender once, delivered to everyone),
then the measured window of `duration` seconds, then a bounded drain. The window's
figures are the sustained rate and the backlog; the drain's end closes the books on
losses and on the server's CPU per delivery.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..drivers import Injector, closed_loop, open_loop, wait_until
from ..jobspec import Job
from ..stats import latency_summary_ms
from ..wsclient import OP_PING, Tally, WsClient, close_all, connect, connect_many
from .common import EVENTS_PATH, address_of, close_injector, make_injector, ws_headers
from .meter import sample, servers_quiet, usage

MAX_EVENTS = 10_000_000


async def run(job: Job) -> dict[str, Any]:
    waited = await servers_quiet(job)
    tally = Tally()
    headers = ws_headers(job)
    clients = await connect_many(job.clients, address_of(job), EVENTS_PATH, headers, tally)
    tally.readers = clients
    stalled = None
    if job.stalled_client:
        host, port = job.targets[0]
        # A tiny receive window, so the server's buffers fill within the run.
        stalled = await connect(host, port, EVENTS_PATH, headers, None, receive_buffer=4096)
        assert stalled.transport is not None
        stalled.transport.pause_reading()
    injector = make_injector(job)
    try:
        await warm_up(job, injector, tally)
        return {**await measure(job, injector, tally, stalled), "waited_for_quiet_s": waited}
    finally:
        tally.closing = True
        close_injector(injector)
        await close_all([*clients, *([stalled] if stalled else [])])


async def warm_up(job: Job, injector: Injector, tally: Tally) -> None:
    """Each sender once (first contact creates contacts, leads and conversations),
    every event delivered to every client before the window opens."""
    count = max(job.warmup_events, job.senders)
    await closed_loop(injector, "w", min(8, count), time.monotonic() + 120, tally, count)
    if not injector.acked:
        raise RuntimeError(f"no warm-up event was accepted: {injector.last_error}")


async def measure(
    job: Job, injector: Injector, tally: Tally, stalled: WsClient | None
) -> dict[str, Any]:
    tally.start_phase("m")
    injector.reset()
    readers = tally.live_readers
    start = sample(job)

    async def send() -> int:
        """Returns how many events never reached every client (closed loop only)."""
        if job.rate is not None:
            await open_loop(injector, "m", job.rate, job.duration)
            return 0
        return await closed_loop(injector, "m", job.in_flight, start.wall + job.duration, tally,
                                 MAX_EVENTS)

    sending = asyncio.create_task(send())
    await asyncio.sleep(max(0.0, start.wall + job.duration - time.monotonic()))
    window_end = sample(job)
    delivered_in_window = tally.deliveries
    owed_at_end = len(injector.acked) * tally.live_readers
    stuck = await sending
    drained = await wait_until(
        lambda: tally.deliveries >= len(injector.acked) * tally.live_readers,
        job.drain_timeout,
        step=0.02,
    )
    end = sample(job)
    window = window_end.wall - start.wall
    deliveries = tally.deliveries
    whole = usage(job, start, end)
    in_window = usage(job, start, window_end)
    result: dict[str, Any] = {
        "clients": readers,
        "rate": job.rate,
        "in_flight": None if job.rate is not None else job.in_flight,
        "offered_deliveries_per_s": None if job.rate is None else job.rate * readers,
        "events_acked": len(injector.acked),
        "events_per_s": round(len(injector.acked) / window, 1),
        "errors": injector.errors,
        "last_error": injector.last_error,
        "deliveries": deliveries,
        "deliveries_per_s": round(delivered_in_window / window, 1),
        **latency_summary_ms(tally.latencies_us),
        "lost": count_lost(tally, injector.acked),
        "duplicates": tally.duplicates,
        # Ordering is the service's promise (ids increase); the reference has no ids.
        "out_of_order": None if job.driver == "reference" else tally.out_of_order,
        "backlog_at_end": max(0, owed_at_end - delivered_in_window),
        "drained": drained,
        "stuck_events": stuck,
        "disconnected_clients": tally.lost_readers,
        "frame_bytes_avg": round(tally.frame_bytes / deliveries) if deliveries else None,
        "server_cpu_us_per_delivery": _per(whole["server_cpu_s"], deliveries),
        "generator_cpu_us_per_delivery": _per(whole["generator_cpu_s"], deliveries),
        "ack_ms": latency_summary_ms(injector.ack_latencies_us),
        "window": in_window,
        "whole_run": whole,
    }
    if stalled is not None:
        result["stalled_client"] = await stalled_outcome(stalled)
    return result


def count_lost(tally: Tally, acked: list[int]) -> int:
    """Acknowledged events some connected client never got (disconnected clients are
    reported on their own)."""
    if not acked:
        return 0
    mask = bytearray(max(acked) + 1)
    for seq in acked:
        mask[seq] = 1
    size = len(mask)
    wanted = int.from_bytes(mask, "big")
    lost = 0
    for client in tally.readers:
        if client.lost:
            continue
        seen = bytes(client.seen[:size]).ljust(size, b"\0")
        lost += len(acked) - (int.from_bytes(seen, "big") & wanted).bit_count()
    return lost


async def stalled_outcome(stalled: WsClient) -> dict[str, Any]:
    """Read what the server left for the stalled client: was it evicted?"""
    closed_before = stalled.lost
    before = stalled.received_bytes
    assert stalled.transport is not None
    if not stalled.transport.is_closing():
        stalled.transport.resume_reading()
        # A server that evicted it may have dropped the socket already, and a reset
        # sent into a full receive window may never have been taken: writing finds
        # out, since the peer's kernel answers a write to a socket it no longer has
        # with a reset. One that kept the connection answers with a pong instead.
        stalled.send_frame(OP_PING, b"still there?")
    await asyncio.wait([stalled.done], timeout=5.0)
    return {
        "evicted": stalled.lost or stalled.close_code is not None,
        "closed_during_run": closed_before,
        "close_code": stalled.close_code,
        # What the server had sent that the client had not read: its buffers, plus
        # the kernel's. Near zero means it never sent anything, not that it evicted.
        "bytes_read_after_run": stalled.received_bytes - before,
    }


def _per(cpu_seconds: float, count: int) -> float | None:
    return round(cpu_seconds * 1e6 / count, 2) if count else None
