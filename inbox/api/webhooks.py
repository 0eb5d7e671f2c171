"""Outgoing webhook endpoints (admins): register, change, rotate the secret, test."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlmodel import col, select

from connectors import standard_webhooks
from connectors.safe_urls import UnsafeUrl, check_destination

from ..errors import field_error
from ..models import Organization, WebhookDelivery, WebhookEndpoint, table_of, utcnow
from ..schemas.common import Page, PageQuery
from ..schemas.webhooks import (
    WebhookCreate,
    WebhookDeliveryPublic,
    WebhookPatch,
    WebhookPublic,
    WebhookWithSecret,
)
from ..services.webhooks.fanout import envelope_text
from ..services.webhooks.keys import WebhookSecrets
from ..state import AppState
from ..web.endpoint import Context, Endpoints
from .common import apply_changes, count, get_owned
from .webhook_deliveries import delivery_public

api = Endpoints("webhooks")

TEST_EVENT = "webhook.test"


def _public(row: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic.model_validate(row)


def _keys(state: AppState) -> WebhookSecrets:
    return WebhookSecrets(state.settings.channel_secrets_keys)


async def _check_url(state: AppState, url: str) -> None:
    try:
        await check_destination(url, state.settings.webhook_allow_private)
    except UnsafeUrl as exc:
        raise field_error("url", str(exc)) from None


def _wake(state: AppState) -> None:
    if state.webhooks is not None:
        state.webhooks.wake()


@api.get(
    "/api/webhooks",
    summary="List outgoing webhook endpoints (admin)",
    query=PageQuery,
    response=Page[WebhookPublic],
    role="admin",
)
async def list_webhooks(ctx: Context[PageQuery, None]) -> Page[WebhookPublic]:
    q = ctx.query
    stmt = select(WebhookEndpoint).where(col(WebhookEndpoint.organization_id) == ctx.org_id)
    async with ctx.state.db.session() as session:
        total = await count(session, stmt)
        rows = await session.exec(
            stmt.order_by(col(WebhookEndpoint.id)).limit(q.limit).offset(q.offset)
        )
        items = [_public(r) for r in rows]
    return Page.of(items, total=total, limit=q.limit, offset=q.offset)


@api.post(
    "/api/webhooks",
    summary="Register an outgoing webhook endpoint; its signing secret is shown once (admin)",
    body=WebhookCreate,
    response=WebhookWithSecret,
    status=201,
    role="admin",
)
async def create_webhook(ctx: Context[None, WebhookCreate]) -> WebhookWithSecret:
    """Events committed from now on are sent to `url`, signed as Standard Webhooks
    specify (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."""
    body = ctx.body
    await _check_url(ctx.state, body.url)
    secret = standard_webhooks.new_secret()
    async with ctx.tx() as tx:
        # The organization's row is locked by the unit of work: no event is committed
        # between reading its last id and the endpoint starting after it.
        last = await tx.session.scalar(
            select(Organization.last_event_id).where(col(Organization.id) == ctx.org_id)
        )
        row = WebhookEndpoint(
            organization_id=ctx.org_id,
            url=body.url,
            events=body.events,
            description=body.description,
            active=body.active,
            secret=_keys(ctx.state).seal(secret),
            cursor=int(last or 0),
        )
        tx.session.add(row)
        await tx.session.flush()
    # The sender's set of organizations with an endpoint is read again at once: an
    # event committed in the next second is not left for the idle poll.
    _wake(ctx.state)
    return WebhookWithSecret(**_public(row).model_dump(), secret=secret)


@api.get(
    "/api/webhooks/{webhook_id:int}",
    summary="Get an outgoing webhook endpoint (admin)",
    response=WebhookPublic,
    role="admin",
)
async def get_webhook(ctx: Context[None, None]) -> WebhookPublic:
    async with ctx.state.db.session() as session:
        row = await get_owned(session, WebhookEndpoint, ctx.path["webhook_id"], ctx.org_id)
    return _public(row)


@api.patch(
    "/api/webhooks/{webhook_id:int}",
    summary="Change an endpoint's URL, events or description, or turn it on or off (admin)",
    body=WebhookPatch,
    response=WebhookPublic,
    role="admin",
)
async def update_webhook(ctx: Context[None, WebhookPatch]) -> WebhookPublic:
    changes: dict[str, Any] = ctx.body.model_dump(include=ctx.body_fields)
    for name, value in changes.items():
        if value is None:
            raise field_error(name, "cannot be null; leave it out to keep it as it is")
    if "url" in changes:
        await _check_url(ctx.state, changes["url"])
    async with ctx.tx() as tx:
        row = await get_owned(tx.session, WebhookEndpoint, ctx.path["webhook_id"], ctx.org_id)
        if changes.get("active") and not row.active:
            changes |= {"disabled_reason": None, "disabled_at": None}
        if apply_changes(row, changes):
            tx.session.add(row)
            await tx.session.flush()
    _wake(ctx.state)
    return _public(row)


@api.delete(
    "/api/webhooks/{webhook_id:int}",
    summary="Delete an endpoint and its delivery log (admin)",
    role="admin",
)
async def delete_webhook(ctx: Context[None, None]) -> None:
    async with ctx.tx() as tx:
        row = await get_owned(tx.session, WebhookEndpoint, ctx.path["webhook_id"], ctx.org_id)
        await tx.session.delete(row)


@api.post(
    "/api/webhooks/{webhook_id:int}/rotate-secret",
    summary="Make a new signing secret; the old one keeps signing beside it for 24 h (admin)",
    response=WebhookWithSecret,
    role="admin",
)
async def rotate_webhook_secret(ctx: Context[None, None]) -> WebhookWithSecret:
    secret = standard_webhooks.new_secret()
    async with ctx.tx() as tx:
        row = await get_owned(tx.session, WebhookEndpoint, ctx.path["webhook_id"], ctx.org_id)
        _keys(ctx.state).rotate(row, secret)
        tx.session.add(row)
        await tx.session.flush()
    return WebhookWithSecret(**_public(row).model_dump(), secret=secret)


@api.post(
    "/api/webhooks/{webhook_id:int}/test",
    summary="Send a `webhook.test` event to the endpoint (admin)",
    response=WebhookDeliveryPublic,
    status=202,
    role="admin",
)
async def test_webhook(ctx: Context[None, None]) -> WebhookDeliveryPublic:
    """Queued like any delivery, retried like one; only this endpoint gets it."""
    now = utcnow()
    async with ctx.tx() as tx:
        row = await get_owned(tx.session, WebhookEndpoint, ctx.path["webhook_id"], ctx.org_id)
        payload = envelope_text(
            ctx.org_id, TEST_EVENT, {"webhook_id": row.id}, event_id=None, timestamp=now
        )
        result = await (await tx.session.connection()).execute(
            insert(table_of(WebhookDelivery))
            .values(
                organization_id=ctx.org_id,
                endpoint_id=row.id,
                event_id=None,
                event_type=TEST_EVENT,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(table_of(WebhookDelivery).c.id)
        )
        delivery = await tx.session.get(WebhookDelivery, result.scalar_one())
        assert delivery is not None
    _wake(ctx.state)
    return delivery_public(delivery, [])
