"""The sender: takes events from the outbox, claims due deliveries, posts them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import ColumnElement, or_, select, update
from sqlmodel import col

from connectors import standard_webhooks
from connectors.safe_urls import UnsafeUrl, read_capped
from connectors.sending import retry_after

from ...db import Database
from ...models import WebhookDelivery, WebhookEndpoint, table_of, utcnow
from ..outbox import EventSink
from .fanout import fan_out
from .keys import WebhookSecrets
from .outcomes import Outcome, prune, record

log = logging.getLogger("inbox.webhooks")

# How often the outbox is looked at for other processes' events: at once after work,
# less often the longer there is none.
POLL_SECONDS = 0.1
IDLE_POLL_SECONDS = 0.5
PRUNE_EVERY_SECONDS = 3600
RESPONSE_KEPT_BYTES = 1024
USER_AGENT = "unified-inbox-webhooks/1"

_DELIVERIES = table_of(WebhookDelivery)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    organization_id: int
    payload: str
    attempts: int
    created_at: datetime


class WebhookSender:
    def __init__(
        self,
        db: Database,
        sink: EventSink,
        http: httpx.AsyncClient,
        secrets: WebhookSecrets,
        *,
        schedule: Sequence[float],
        timeout: float,
        concurrency: int,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.db = db
        self.sink = sink
        self.http = http
        self.secrets = secrets
        self.schedule = list(schedule)
        self.timeout = timeout
        self.concurrency = concurrency
        # Finished deliveries are kept as long as the events they carried.
        self.retention = retention
        # A claim outlives the attempt it is for: past it, the attempt's process is
        # taken for dead and another one tries.
        self.lease = timedelta(seconds=timeout + 30)
        self._draining: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        pruned = time.monotonic()
        wait = POLL_SECONDS
        try:
            while True:
                # Cleared before the pass: a commit during it wakes the next one.
                self._wake.clear()
                try:
                    if time.monotonic() - pruned >= PRUNE_EVERY_SECONDS:
                        pruned = time.monotonic()
                        await prune(self.db, self.retention)
                    made = await fan_out(self.db)
                    due = await self._due_endpoints()
                    wait = POLL_SECONDS if made or due else min(wait * 2, IDLE_POLL_SECONDS)
                    for endpoint_id in due:
                        if endpoint_id not in self._draining:
                            self._draining[endpoint_id] = asyncio.create_task(
                                self._drain(endpoint_id), name=f"webhook-{endpoint_id}"
                            )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook pass failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            tasks = list(self._draining.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _due_endpoints(self) -> list[int]:
        now = utcnow()
        async with self.db.session() as session:
            rows = await (await session.connection()).execute(
                select(_DELIVERIES.c.endpoint_id)
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == _DELIVERIES.c.endpoint_id)
                .where(*_due(now), col(WebhookEndpoint.active))
                .distinct()
            )
            return [r[0] for r in rows]

    async def _drain(self, endpoint_id: int) -> None:
        try:
            while True:
                async with self.db.session() as session:
                    endpoint = await session.get(WebhookEndpoint, endpoint_id)
                if endpoint is None or not endpoint.active:
                    return
                claimed = await self.claim(endpoint_id, self.concurrency)
                if not claimed:
                    return
                signing = self.secrets.signing(endpoint)
                outcomes = await asyncio.gather(
                    *(self._attempt(endpoint.url, signing, c) for c in claimed)
                )
                await record(self.db, self.sink, endpoint_id, self.schedule, outcomes)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook endpoint %d: sending failed", endpoint_id)
        finally:
            self._draining.pop(endpoint_id, None)

    async def claim(self, endpoint_id: int, limit: int) -> list[Claimed]:
        """Take up to ``limit`` due deliveries of the endpoint for this process."""
        now = utcnow()
        async with self.db.session(write=True) as session:
            due = (
                select(_DELIVERIES.c.id)
                .where(_DELIVERIES.c.endpoint_id == endpoint_id, *_due(now))
                .order_by(_DELIVERIES.c.id)
                .limit(limit)
            )
            if self.db.dialect == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = await (await session.connection()).execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id.in_(due.scalar_subquery()))
                .values(lease_until=now + self.lease, attempts=_DELIVERIES.c.attempts + 1)
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

    async def _attempt(self, url: str, signing: list[str], delivery: Claimed) -> Outcome:
        body = delivery.payload.encode()
        headers = standard_webhooks.headers(signing, f"msg_{delivery.id}", body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = USER_AGENT
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        kept: bytes | None = None
        wait: float | None = None
        try:
            # The whole exchange, not each read: a receiver that drips its answer a byte
            # at a time is as late as one that never answers.
            async with (
                asyncio.timeout(self.timeout),
                self.http.stream("POST", url, content=body, headers=headers) as response,
            ):
                status = response.status_code
                wait = retry_after(response.headers.get("retry-after"))
                kept = await read_capped(response, RESPONSE_KEPT_BYTES)
        except UnsafeUrl as exc:
            error = f"refused: {exc}"
        except (httpx.TimeoutException, TimeoutError):
            status = None
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
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


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        _DELIVERIES.c.status == "pending",
        _DELIVERIES.c.next_attempt_at <= now,
        or_(_DELIVERIES.c.lease_until.is_(None), _DELIVERIES.c.lease_until < now),
    ]
