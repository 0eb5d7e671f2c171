"""What was sent to an outgoing webhook endpoint, and sending one delivery again (admins)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlmodel import col, select

from ..errors import Conflict, NotFound
from ..models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from ..schemas.webhooks import (
    DeliveryPage,
    DeliveryQuery,
    WebhookAttemptPublic,
    WebhookDeliveryPublic,
)
from ..web.endpoint import Context, Endpoints
from .common import get_owned

api = Endpoints("webhooks")


def delivery_public(
    row: WebhookDelivery, attempts: Sequence[WebhookAttempt]
) -> WebhookDeliveryPublic:
    assert row.id is not None
    return WebhookDeliveryPublic(
        id=row.id,
        webhook_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        attempt_log=[WebhookAttemptPublic.model_validate(a) for a in attempts],
    )


@api.get(
    "/api/webhooks/{webhook_id:int}/deliveries",
    summary="An endpoint's deliveries, newest first, each with its attempts (admin)",
    query=DeliveryQuery,
    response=DeliveryPage,
    role="admin",
)
async def list_deliveries(ctx: Context[DeliveryQuery, None]) -> DeliveryPage:
    q = ctx.query
    async with ctx.state.db.session() as session:
        endpoint = await get_owned(session, WebhookEndpoint, ctx.path["webhook_id"], ctx.org_id)
        stmt = select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id)
        if q.status is not None:
            stmt = stmt.where(col(WebhookDelivery.status) == q.status)
        if q.before is not None:
            stmt = stmt.where(col(WebhookDelivery.id) < q.before)
        rows = list(
            await session.exec(stmt.order_by(col(WebhookDelivery.id).desc()).limit(q.limit + 1))
        )
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        attempts: dict[int, list[WebhookAttempt]] = defaultdict(list)
        if rows:
            found = await session.exec(
                select(WebhookAttempt)
                .where(col(WebhookAttempt.delivery_id).in_([r.id for r in rows]))
                .order_by(col(WebhookAttempt.id))
            )
            for attempt in found:
                attempts[attempt.delivery_id].append(attempt)
    return DeliveryPage(
        data=[delivery_public(r, attempts[r.id or 0]) for r in rows],
        next_cursor=rows[-1].id if more and rows else None,
    )


@api.post(
    "/api/webhooks/{webhook_id:int}/deliveries/{delivery_id:int}/redeliver",
    summary="Send a delivery again, with a fresh retry schedule (admin)",
    response=WebhookDeliveryPublic,
    status=202,
    role="admin",
    errors=(409,),
)
async def redeliver(ctx: Context[None, None]) -> WebhookDeliveryPublic:
    """The same body and `webhook-id`: a receiver that kept it can tell it is a repeat."""
    async with ctx.tx() as tx:
        endpoint = await get_owned(tx.session, WebhookEndpoint, ctx.path["webhook_id"], ctx.org_id)
        row = await tx.session.get(WebhookDelivery, ctx.path["delivery_id"], with_for_update=True)
        if row is None or row.endpoint_id != endpoint.id:
            raise NotFound(f"Delivery {ctx.path['delivery_id']} not found")
        if not endpoint.active:
            raise Conflict(
                "The endpoint is disabled: turn it on (PATCH active: true) to send again",
                {"disabled_reason": endpoint.disabled_reason},
            )
        now = utcnow()
        row.status = "pending"
        row.attempts = 0
        row.next_attempt_at = now
        row.finished_at = None
        row.updated_at = now
        tx.session.add(row)
        await tx.session.flush()
    if ctx.state.webhooks is not None:
        ctx.state.webhooks.wake()
    return delivery_public(row, [])
