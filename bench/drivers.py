"""What causes the events: signed WhatsApp webhooks, the generic webhook, or the
reference server's publish endpoint; and the pacing that sends them.

Every event's text carries `bench:<phase>:<seq>:<sent µs>;`, the marker the clients
find in the frames (`wsclient`): the sequence number finds losses, repeats and
reorders, the send time gives the latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from .httpclient import HttpError, HttpPool
from .wsclient import Tally, now_us


def marker(phase: str, seq: int, sent_us: int) -> str:
    return f"bench:{phase}:{seq}:{sent_us};"


class Driver(Protocol):
    path: str

    def request(self, phase: str, seq: int, text: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the request that causes event `seq` of `phase`."""
        ...

    def acknowledged(self, status: int, body: bytes) -> bool: ...


class WhatsAppDriver:
    """A signed WhatsApp Cloud API `messages` delivery, as Meta sends one."""

    path = "/webhooks/whatsapp"

    def __init__(self, run: str, secret: str, phone_number_id: str, senders: int) -> None:
        self._run, self._secret = run, secret.encode()
        self._phone_number_id, self._senders = phone_number_id, senders

    def request(self, phase: str, seq: int, text: str) -> tuple[bytes, dict[str, str]]:
        sender = f"1650555{seq % self._senders:04d}"
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881",
                             "phone_number_id": self._phone_number_id},
                "contacts": [{"profile": {"name": f"Bench {sender}"}, "wa_id": sender}],
                "messages": [{"from": sender, "id": f"wamid.bench.{self._run}.{phase}{seq}",
                              "timestamp": str(int(time.time())), "type": "text",
                              "text": {"body": text}}],
            }}]}],
        }
        body = orjson.dumps(payload)
        signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json",
                      "X-Hub-Signature-256": f"sha256={signature}"}

    def acknowledged(self, status: int, body: bytes) -> bool:
        return status == 200 and b'"stored":1' in body


class GenericDriver:
    """The service's own normalized webhook, authenticated with an API key."""

    path = "/webhooks/messages/incoming"

    def __init__(self, run: str, api_key: str, senders: int) -> None:
        self._run, self._api_key, self._senders = run, api_key, senders

    def request(self, phase: str, seq: int, text: str) -> tuple[bytes, dict[str, str]]:
        sender = f"+1555010{seq % self._senders:04d}"
        body = orjson.dumps({"from": sender, "content": text, "platform": "sms",
                             "name": f"Bench {sender}",
                             "external_id": f"bench.{self._run}.{phase}{seq}"})
        return body, {"Content-Type": "application/json", "X-Api-Key": self._api_key}

    def acknowledged(self, status: int, body: bytes) -> bool:
        return status == 200 and b'"stored":1' in body


# The reference broadcasts what it is given: a frame shaped and sized like the
# service's `message.received` envelope, so both send the same bytes per delivery.
_REFERENCE_FRAME = (
    '{"type":"message.received","organization_id":1,"timestamp":"2026-01-15T16:35:00.123Z",'
    '"data":{"id":%d,"conversation_id":7,"channel_id":1,"direction":"inbound",'
    '"sender_contact_id":7,"sender_user_id":null,"content":"%s","content_type":"text",'
    '"attachments":[],"private":false,"external_id":"wamid.bench.%s.%s","status":"received",'
    '"error_code":null,"error":null,"platform_timestamp":"2026-01-15T16:35:00Z",'
    '"created_at":"2026-01-15T16:35:00.101234Z","ordered_at":"2026-01-15T16:35:00Z"}}'
)


class ReferenceDriver:
    path = "/publish"

    def __init__(self, run: str) -> None:
        self._run = run

    def request(self, phase: str, seq: int, text: str) -> tuple[bytes, dict[str, str]]:
        body = (_REFERENCE_FRAME % (seq, text, self._run, f"{phase}{seq}")).encode()
        return body, {"Content-Type": "application/json"}

    def acknowledged(self, status: int, body: bytes) -> bool:
        return status == 200


@dataclass
class Injector:
    """Sends events through a driver, spread round-robin over the servers' pools."""

    driver: Driver
    pools: list[HttpPool]
    acked: list[int] = field(default_factory=list)
    ack_latencies_us: list[int] = field(default_factory=list)
    errors: int = 0
    last_error: str | None = None

    async def send(self, phase: str, seq: int, sent_us: int) -> bool:
        body, headers = self.driver.request(phase, seq, marker(phase, seq, sent_us))
        pool = self.pools[seq % len(self.pools)]
        started = now_us()
        try:
            status, answer = await pool.post(self.driver.path, body, headers)
        except (HttpError, OSError, TimeoutError) as exc:
            self.errors += 1
            self.last_error = repr(exc)
            return False
        self.ack_latencies_us.append(now_us() - started)
        if self.driver.acknowledged(status, answer):
            self.acked.append(seq)
            return True
        self.errors += 1
        self.last_error = f"HTTP {status}: {answer[:300]!r}"
        return False

    def reset(self) -> None:
        self.acked, self.ack_latencies_us = [], []
        self.errors, self.last_error = 0, None


async def open_loop(injector: Injector, phase: str, rate: float, duration: float) -> None:
    """Send at a fixed rate whatever the server does; the stamped time is the planned
    one, so a late send counts against latency (no coordinated omission)."""
    count = max(1, round(rate * duration))
    started = now_us()
    tasks: set[asyncio.Task[bool]] = set()
    for seq in range(count):
        planned = started + round(seq * 1_000_000 / rate)
        delay = planned - now_us()
        if delay > 0:
            await asyncio.sleep(delay / 1_000_000)
        task = asyncio.create_task(injector.send(phase, seq, planned))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(list(tasks))


async def closed_loop(
    injector: Injector,
    phase: str,
    in_flight: int,
    until: float,
    tally: Tally | None,
    max_events: int,
    stuck_after: float = 10.0,
) -> int:
    """Keep `in_flight` events going until the monotonic clock reaches `until`.

    With a tally, an event stays in flight until every live reader has it (so the
    server's fan-out, not only its HTTP answer, bounds the pace); without one, until
    the HTTP answer. Returns how many events were left waiting past `stuck_after`.
    """
    next_seq = 0
    stuck = 0

    def take() -> int | None:
        nonlocal next_seq
        if time.monotonic() >= until or next_seq >= max_events:
            return None
        next_seq += 1
        return next_seq - 1

    async def worker() -> None:
        nonlocal stuck
        while (seq := take()) is not None:
            waiter = tally.expect(seq) if tally is not None and tally.live_readers else None
            if not await injector.send(phase, seq, now_us()):
                if tally is not None:
                    tally.forget(seq)
                continue
            if waiter is not None:
                try:
                    await asyncio.wait_for(waiter, stuck_after)
                except (TimeoutError, asyncio.CancelledError):
                    stuck += 1

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return stuck


async def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True
