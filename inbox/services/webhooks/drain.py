"""One endpoint's deliveries: claimed in batches, up to `concurrency` requests in
flight, their outcomes recorded a batch to a transaction.

Deliveries start in the order they were claimed (by id, which is event order), from
one queue that `concurrency` workers take from. Claims keep the queue topped up while
requests are in flight, and outcomes wait for the transaction after the one being
committed, so neither the database nor the receiver waits for the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update

from connectors import standard_webhooks
from connectors.safe_urls import UnsafeUrl
from connectors.sending import retry_after

from ...db import Database
from ...models import WebhookDelivery, WebhookEndpoint, table_of, utcnow
from ...telemetry.metrics import outgoing_webhook_delivered
from ..outbox import EventSink
from .client import DeliveryClient, DeliveryFailed
from .keys import WebhookSecrets
from .outcomes import Outcome, record

log = logging.getLogger("inbox.webhooks")

RESPONSE_KEPT_BYTES = 1024
USER_AGENT = "unified-inbox-webhooks/1"
# Claimed and not yet recorded, as a multiple of the requests in flight: enough that
# the workers never wait for a claim, few enough that every one is attempted well
# within its lease.
QUEUED_PER_WORKER = 4
# The endpoint (URL, secrets, whether it is on) is read again after this long, and at
# once after a failure, which may have turned it off.
ENDPOINT_TTL_SECONDS = 1.0
# How long answers gather before they are recorded while sends are in flight (unless a
# quarter of the drain's capacity has been answered first).
RECORD_LINGER_SECONDS = 0.02
# A claim's lease covers its deliveries' turns in the queue and this much more: past
# it, the process is taken for dead and another one tries.
LEASE_MARGIN = timedelta(seconds=30)

_DELIVERIES = table_of(WebhookDelivery)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    organization_id: int
    payload: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outlet:
    """What every endpoint's drain shares."""

    db: Database
    sink: EventSink
    http: DeliveryClient
    secrets: WebhookSecrets
    schedule: list[float]
    timeout: float
    concurrency: int


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str
    signing: list[str]
    read_at: float


def due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        _DELIVERIES.c.status == "pending",
        _DELIVERIES.c.next_attempt_at <= now,
        or_(_DELIVERIES.c.lease_until.is_(None), _DELIVERIES.c.lease_until < now),
    ]


class Drain:
    def __init__(self, outlet: Outlet, endpoint_id: int) -> None:
        self.outlet = outlet
        self.endpoint_id = endpoint_id
        self.capacity = outlet.concurrency * QUEUED_PER_WORKER
        self._queue: deque[Claimed] = deque()
        self._outcomes: list[Outcome] = []
        # Claimed and not yet recorded (queued, in flight, or waiting to be recorded).
        self._claimed: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._endpoint: _Endpoint | None = None
        self._reread = True
        # Rows may be due that were not when last claimed.
        self._more = True
        self._progress = asyncio.Event()
        self._to_record = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._record_batch = max(1, self.capacity // 4)

    @property
    def poked(self) -> bool:
        """Told of new deliveries since it last claimed (asked once it has stopped)."""
        return self._more

    def poke(self, *, reread: bool = False) -> None:
        """New deliveries may be due; ``reread``: the endpoint may have changed."""
        self._more = True
        self._reread = self._reread or reread
        self._progress.set()

    async def run(self) -> None:
        recorder = asyncio.create_task(self._recorder(), name=f"webhook-{self.endpoint_id}-record")
        try:
            while True:
                self._progress.clear()
                endpoint = await self._current_endpoint()
                if endpoint is None:
                    # Turned off or deleted: nothing more is started; what is in flight
                    # is answered and recorded first.
                    await self._release([c.id for c in self._queue])
                    self._queue.clear()
                    if not self._claimed:
                        return
                else:
                    self._start_workers()
                    room = self.capacity - len(self._claimed)
                    # Topped up once half the room is free: claims of a useful size.
                    if self._more and (room >= self.capacity // 2 or not self._claimed):
                        self._more = False
                        claimed = await self.claim(room)
                        if len(claimed) == room:
                            self._more = True  # there may be more behind them
                        if claimed:
                            self._queue.extend(claimed)
                            self._claimed.update(c.id for c in claimed)
                            continue
                    if not self._claimed and not self._more:
                        return
                await self._progress.wait()
        finally:
            # Cancelled (the service stops) or failed: requests in flight are cut short.
            tasks = [recorder, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._queue.clear()
            # What was answered is recorded; the rest is given back at once rather than
            # left to its lease, for whichever process runs next.
            await self._record(self._outcomes)
            await self._release(list(self._claimed))

    async def _current_endpoint(self) -> _Endpoint | None:
        found = self._endpoint
        if (
            found is not None
            and not self._reread
            and time.monotonic() - found.read_at < ENDPOINT_TTL_SECONDS
        ):
            return found
        self._reread = False
        async with self.outlet.db.session() as session:
            row = await session.get(WebhookEndpoint, self.endpoint_id)
        if row is None or not row.active:
            self._endpoint = None
            return None
        found = self._endpoint = _Endpoint(
            row.url, self.outlet.secrets.signing(row), time.monotonic()
        )
        return found

    def _start_workers(self) -> None:
        while len(self._tasks) < min(self.outlet.concurrency, len(self._queue)):
            task = asyncio.create_task(self._work(), name=f"webhook-{self.endpoint_id}-send")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self) -> None:
        while self._queue and (endpoint := self._endpoint) is not None:
            delivery = self._queue.popleft()
            outcome = await self._attempt(endpoint, delivery)
            # Not before the await: the recorder replaces the list meanwhile.
            self._outcomes.append(outcome)
            self._to_record.set()
            if len(self._outcomes) >= self._record_batch:
                self._batch_full.set()

    async def _recorder(self) -> None:
        while True:
            await self._to_record.wait()
            if self._tasks and len(self._outcomes) < self._record_batch:
                # A moment for the other sends in flight to be answered: one transaction
                # records them together (a transaction costs more than a send). A
                # backlog fills the batch at once and does not wait.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_full.wait(), RECORD_LINGER_SECONDS)
            self._to_record.clear()
            self._batch_full.clear()
            batch, self._outcomes = self._outcomes, []
            await self._record(batch)

    async def _record(self, batch: list[Outcome]) -> None:
        if not batch:
            return
        outlet = self.outlet
        try:
            await record(outlet.db, outlet.sink, self.endpoint_id, outlet.schedule, batch)
        except Exception:
            # Left to their leases: each is attempted again once its lease is over.
            log.exception("webhook endpoint %d: recording outcomes failed", self.endpoint_id)
        else:
            counted = Counter(_counted_as(o, outlet.schedule) for o in batch)
            for outcome, count in counted.items():
                outgoing_webhook_delivered(outcome, count)
        finally:
            self._claimed.difference_update(o.delivery_id for o in batch)
            if not all(o.succeeded for o in batch):
                self._reread = True  # maybe turned off by what was recorded
            self._progress.set()

    async def claim(self, limit: int) -> list[Claimed]:
        """Take up to ``limit`` due deliveries of the endpoint for this process."""
        now = utcnow()
        # The last of them starts after the ones before it, each given its timeout.
        turns = math.ceil((len(self._claimed) + limit) / self.outlet.concurrency)
        lease = now + timedelta(seconds=turns * self.outlet.timeout) + LEASE_MARGIN
        db = self.outlet.db
        async with db.session(write=True) as session:
            wanted = (
                select(_DELIVERIES.c.id)
                .where(_DELIVERIES.c.endpoint_id == self.endpoint_id, *due(now))
                .order_by(_DELIVERIES.c.id)
                .limit(limit)
            )
            if db.dialect == "postgresql":
                wanted = wanted.with_for_update(skip_locked=True)
            rows = await (await session.connection()).execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id.in_(wanted.scalar_subquery()))
                .values(lease_until=lease, attempts=_DELIVERIES.c.attempts + 1)
                .returning(
                    _DELIVERIES.c.id,
                    _DELIVERIES.c.organization_id,
                    _DELIVERIES.c.payload,
                    _DELIVERIES.c.attempts,
                    _DELIVERIES.c.created_at,
                )
            )
            claimed = sorted((Claimed(*r) for r in rows), key=lambda c: c.id)
            await session.commit()
        return claimed

    async def _release(self, ids: list[int]) -> None:
        """Give back claimed deliveries that got no answer here: due again at once, for
        any process, their claim not counted as an attempt."""
        if not ids:
            return
        self._claimed.difference_update(ids)
        try:
            async with self.outlet.db.session(write=True) as session:
                await (await session.connection()).execute(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.id.in_(ids), _DELIVERIES.c.status == "pending")
                    .values(lease_until=None, attempts=_DELIVERIES.c.attempts - 1)
                )
                await session.commit()
        except Exception:
            log.exception(
                "webhook endpoint %d: giving back %d claims failed", self.endpoint_id, len(ids)
            )

    async def _attempt(self, endpoint: _Endpoint, delivery: Claimed) -> Outcome:
        timeout = self.outlet.timeout
        body = delivery.payload.encode()
        headers = [
            ("content-type", "application/json"),
            ("user-agent", USER_AGENT),
            *standard_webhooks.headers(endpoint.signing, f"msg_{delivery.id}", body).items(),
        ]
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        kept: bytes | None = None
        wait: float | None = None
        try:
            # The whole exchange, not each read: a receiver that drips its answer a byte
            # at a time is as late as one that never answers.
            async with asyncio.timeout(timeout):
                answer = await self.outlet.http.post(
                    endpoint.url, body, headers, RESPONSE_KEPT_BYTES
                )
            status, kept = answer.status, answer.body
            wait = retry_after(answer.retry_after)
        except UnsafeUrl as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except DeliveryFailed as exc:
            error = str(exc)[:500]
        except Exception as exc:  # recorded as a failed attempt, and retried
            log.exception("webhook delivery %d: the attempt failed", delivery.id)
            error = f"{type(exc).__name__}: {exc}"[:500]
        return Outcome(
            delivery_id=delivery.id,
            organization_id=delivery.organization_id,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            status_code=status,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
            response=kept.decode("utf-8", "replace") if kept is not None else None,
            retry_after=wait,
        )


def _counted_as(outcome: Outcome, schedule: list[float]) -> str:
    """succeeded, retry (it will be attempted again) or failed (for good)."""
    if outcome.succeeded:
        return "succeeded"
    if outcome.gone or outcome.attempts > len(schedule):
        return "failed"
    return "retry"
