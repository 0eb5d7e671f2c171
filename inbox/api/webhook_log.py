"""The webhook requests this service received, and running one again (admins).

An organization sees the records of its channels and keys. A request that named no
channel of any organization, or failed its signature check, belongs to none: only
the operator reads and replays those (`inbox webhooks list|replay`).
"""

from __future__ import annotations

from sqlmodel import col, select

from ..errors import NotFound
from ..models import WebhookRecord
from ..schemas.webhook_log import (
    ReplayResult,
    WebhookLogPage,
    WebhookLogQuery,
)
from ..services.webhook_archive.public import record_public
from ..web.endpoint import Context, Endpoints
from ..web.webhook_replay import replay

api = Endpoints("webhooks")


@api.get(
    "/api/webhook-log",
    summary="Webhook requests received for the organization, newest first (admin)",
    query=WebhookLogQuery,
    response=WebhookLogPage,
    role="admin",
)
async def list_webhook_log(ctx: Context[WebhookLogQuery, None]) -> WebhookLogPage:
    """Kept `INBOX_WEBHOOK_ARCHIVE_DAYS` days; bodies are text when UTF-8, else base64."""
    q = ctx.query
    stmt = select(WebhookRecord).where(col(WebhookRecord.organization_id) == ctx.org_id)
    if q.outcome is not None:
        stmt = stmt.where(col(WebhookRecord.outcome) == q.outcome)
    if q.kind is not None:
        stmt = stmt.where(col(WebhookRecord.kind) == q.kind)
    if q.channel_id is not None:
        stmt = stmt.where(col(WebhookRecord.channel_id) == q.channel_id)
    if q.before is not None:
        stmt = stmt.where(col(WebhookRecord.id) < q.before)
    async with ctx.state.db.session() as session:
        rows = list(
            await session.exec(stmt.order_by(col(WebhookRecord.id).desc()).limit(q.limit + 1))
        )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return WebhookLogPage(
        data=[record_public(r) for r in rows],
        next_cursor=rows[-1].id if more and rows else None,
    )


@api.post(
    "/api/webhook-log/{record_id:int}/replay",
    summary="Run a recorded webhook request again through today's code and channels (admin)",
    response=ReplayResult,
    role="admin",
    errors=(422,),
)
async def replay_webhook(ctx: Context[None, None]) -> ReplayResult:
    """Idempotent: a delivery already stored is a duplicate. A request that failed its
    signature or key check is refused (422 `WEBHOOK_NOT_REPLAYABLE`)."""
    async with ctx.state.db.session() as session:
        row = await session.get(WebhookRecord, ctx.path["record_id"])
    if row is None or row.organization_id != ctx.org_id:
        raise NotFound(f"Webhook record {ctx.path['record_id']} not found")
    done = await replay(ctx.request.app, ctx.state, row)
    return ReplayResult(
        replay_of=done.replay_of,
        outcome=done.outcome,
        status=done.status,
        answer=done.answer,
        record_id=done.record_id,
    )
