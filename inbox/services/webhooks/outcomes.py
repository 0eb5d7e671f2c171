"""What an attempt's answer does to its delivery, and to its endpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from ...db import Database
from ...events import EventType
from ...models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, table_of, utcnow
from ..outbox import EventSink, unit_of_work
from .schedule import retry_delay

log = logging.getLogger("inbox.webhooks")

_DELIVERIES = table_of(WebhookDelivery)
_ENDPOINTS = table_of(WebhookEndpoint)


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    organization_id: int
    attempts: int
    created_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str | None
    retry_after: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


async def record(
    db: Database,
    sink: EventSink,
    endpoint_id: int,
    schedule: Sequence[float],
    outcomes: Sequence[Outcome],
) -> None:
    """Record a batch of attempts in one transaction; then disable the endpoint if one
    said it is gone or one ran out of retries without a success since it was made."""
    if not outcomes:
        return
    now = utcnow()
    disable: str | None = None
    async with db.session(write=True) as session:
        await (await session.connection()).execute(
            insert(table_of(WebhookAttempt)),
            [
                {
                    "delivery_id": o.delivery_id,
                    "attempted_at": now - timedelta(milliseconds=o.duration_ms),
                    "status_code": o.status_code,
                    "error": o.error,
                    "duration_ms": o.duration_ms,
                    "response_body": o.response,
                }
                for o in outcomes
            ],
        )
        done = [o.delivery_id for o in outcomes if o.succeeded]
        # One statement per status code answered (nearly always one: 200 or 204).
        by_status: dict[int | None, list[int]] = {}
        for o in outcomes:
            if o.succeeded:
                by_status.setdefault(o.status_code, []).append(o.delivery_id)
        for status_code, ids in by_status.items():
            await (await session.connection()).execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id.in_(ids))
                .values(
                    status="succeeded",
                    lease_until=None,
                    last_status_code=status_code,
                    last_error=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
        if done:
            await (await session.connection()).execute(
                update(_ENDPOINTS).where(_ENDPOINTS.c.id == endpoint_id).values(last_success_at=now)
            )
        for o in outcomes:
            if o.succeeded:
                continue
            delay = None if o.gone else retry_delay(schedule, o.attempts, o.retry_after)
            values: dict[str, object] = {
                "lease_until": None,
                "last_status_code": o.status_code,
                "last_error": o.error or f"HTTP {o.status_code}",
                "updated_at": now,
            }
            if delay is None:
                values |= {"status": "failed", "finished_at": now}
                if o.gone:
                    disable = "The receiver answered 410 Gone"
                elif not done and await _no_success_since(session, endpoint_id, o.created_at):
                    disable = (
                        f"Every attempt of delivery {o.delivery_id} failed over its whole "
                        "retry schedule"
                    )
            else:
                values["next_attempt_at"] = now + timedelta(seconds=delay)
            await (await session.connection()).execute(
                update(_DELIVERIES).where(_DELIVERIES.c.id == o.delivery_id).values(**values)
            )
        await session.commit()
    if disable is not None:
        await disable_endpoint(db, sink, outcomes[0].organization_id, endpoint_id, disable)


async def _no_success_since(session: AsyncSession, endpoint_id: int, since: datetime) -> bool:
    last = await session.scalar(
        _ENDPOINTS.select()
        .with_only_columns(_ENDPOINTS.c.last_success_at)
        .where(_ENDPOINTS.c.id == endpoint_id)
    )
    return last is None or last < since


async def disable_endpoint(
    db: Database, sink: EventSink, organization_id: int, endpoint_id: int, reason: str
) -> None:
    """Turn the endpoint off and say so with a ``webhook.disabled`` event, once."""
    async with unit_of_work(db, organization_id, sink) as tx:
        endpoint = await tx.session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if endpoint is None or not endpoint.active:
            return
        now = utcnow()
        endpoint.active = False
        endpoint.disabled_reason = reason
        endpoint.disabled_at = now
        endpoint.updated_at = now
        tx.session.add(endpoint)
        tx.emit(
            EventType.WEBHOOK_DISABLED,
            # No URL: the event reaches every agent, and the URL is the admins' to see.
            {"id": endpoint_id, "description": endpoint.description, "reason": reason},
        )
    log.warning("webhook endpoint %d disabled: %s", endpoint_id, reason)


async def prune(db: Database, older_than: timedelta) -> int:
    """Delete finished deliveries (and their attempts) older than ``older_than``."""
    cutoff = utcnow() - older_than
    async with db.session(write=True) as session:
        conn = await session.connection()
        old = (
            select(_DELIVERIES.c.id)
            .where(_DELIVERIES.c.status != "pending", _DELIVERIES.c.finished_at < cutoff)
            .scalar_subquery()
        )
        attempts = table_of(WebhookAttempt)
        await conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(old)))
        result = await conn.execute(delete(_DELIVERIES).where(_DELIVERIES.c.id.in_(old)))
        await session.commit()
    return int(result.rowcount or 0)
