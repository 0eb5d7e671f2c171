"""Ingest with and without the rollups, compared fairly.

Two `inbox serve` processes run side by side on the same database: a plain one, and
one started with bench/rollups_off on its path, so that it stores messages without
counting them. Both answer the same signed WhatsApp webhooks from the same known
senders (every sender's contact made beforehand, so no run pays for new contacts).
Runs alternate between them in the order AB BA AB ..., each posting the same number
of webhooks with the same number in flight; the database grows by the same amount
under each. Each pair of runs gives a ratio, and the figure is the median ratio:
load from other work on the machine falls on both sides of a pair alike. Beside
webhooks a second, each run notes the server process's CPU time per webhook, which
other work on a shared machine disturbs far less than the wall clock (on PostgreSQL
it leaves out the database server's own share of the work).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from connectors.signatures import meta_signature

from .httpclient import HttpPool
from .procstat import process_cpu_seconds
from .servers import HOST

ROLLUPS_OFF = str(Path(__file__).resolve().parent / "rollups_off")
APP_SECRET = "bench-secret"
# Senders spread over many contacts, as the ingest scenario's are.
SENDERS = 200


@dataclass(frozen=True)
class Server:
    port: int
    pid: int


@dataclass
class Run:
    rate: float  # webhooks a second
    cpu_us: float  # the server process's CPU time per webhook


@dataclass
class Comparison:
    in_flight: int
    with_rollups: list[Run]
    without: list[Run]

    def ratios(self, figure: str) -> list[float]:
        return [
            getattr(w, figure) / getattr(o, figure)
            for w, o in zip(self.with_rollups, self.without, strict=True)
        ]

    def lines(self) -> list[str]:
        """Webhooks a second, then CPU per webhook: each side's median, the median of
        the pairs' ratios (with / without) and every pair's ratio."""
        out = []
        for figure, unit in (("rate", "msg/s"), ("cpu_us", "CPU us/msg")):
            ratios = self.ratios(figure)
            out.append(
                f"{self.in_flight:>9}  {unit:<11}"
                f"{statistics.median(getattr(r, figure) for r in self.with_rollups):>9.0f}"
                f"{statistics.median(getattr(r, figure) for r in self.without):>10.0f}"
                f"{(statistics.median(ratios) - 1) * 100:>+10.1f} %"
                f"   pairs: {', '.join(f'{r:.2f}' for r in ratios)}"
            )
        return out


def webhook(phone_number_id: str, sender: int) -> bytes:
    number = f"1650555{sender:04d}"
    message = {
        "from": number,
        "id": f"wamid.bench.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": "Does it come in another color?"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": f"Sender {sender}"}, "wa_id": number}],
        "messages": [message],
    }
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
    )


async def post_webhooks(port: int, phone: str, count: int, in_flight: int, first: int) -> float:
    """Post ``count`` webhooks, ``in_flight`` at a time; webhooks a second."""
    pool = HttpPool(HOST, port, in_flight)
    bodies = [webhook(phone, (first + n) % SENDERS) for n in range(count)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            headers = {
                "X-Hub-Signature-256": meta_signature(APP_SECRET, body),
                "Content-Type": "application/json",
            }
            status, answer = await pool.post("/webhooks/whatsapp", body, headers)
            if status != 200:
                raise RuntimeError(f"webhook answered {status}: {answer[:300]!r}")

    try:
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return count / (time.perf_counter() - began)
    finally:
        pool.close()


def run(server: Server, phone: str, count: int, in_flight: int, first: int) -> Run:
    cpu = process_cpu_seconds(server.pid)
    rate = asyncio.run(post_webhooks(server.port, phone, count, in_flight, first))
    return Run(rate, (process_cpu_seconds(server.pid) - cpu) / count * 1e6)


def compare(
    plain: Server, rollups_off: Server, phone: str, webhooks: int, in_flight: int, pairs: int
) -> Comparison:
    """``pairs`` interleaved pairs of runs against the two servers."""
    runs: dict[Server, list[Run]] = {plain: [], rollups_off: []}
    sent = 0
    for pair in range(pairs):
        order = (plain, rollups_off) if pair % 2 == 0 else (rollups_off, plain)
        for server in order:
            runs[server].append(run(server, phone, webhooks, in_flight, sent))
            sent += webhooks
    return Comparison(in_flight, runs[plain], runs[rollups_off])


def warm(servers: list[Server], phone: str) -> None:
    """Every sender's contact and conversation made, each server's caches filled."""
    for server in servers:
        run(server, phone, SENDERS, 8, 0)
