from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col
from starlette.responses import Response

from ..errors import Conflict, field_error
from ..events import EventType
from ..media.attachments import reply_attachments
from ..models import Message, utcnow
from ..schemas.conversations import MessagePublic, ReplyCreate
from ..services.message_status import status_data
from ..services.outbound import Idempotency, post_reply
from ..web.endpoint import Context, Endpoints, json_response
from .common import get_owned

api = Endpoints("conversations")

MAX_IDEMPOTENCY_KEY = 200


@api.post(
    "/api/conversations/{conversation_id:int}/messages",
    summary="Reply in a conversation (or add a private note); sent through its channel",
    body=ReplyCreate,
    response=MessagePublic,
    status=201,
)
async def create_message(ctx: Context[None, ReplyCreate]) -> Response:
    """Answers 201 at once with the message `queued`; delivery follows (`message.status`).
    With an `Idempotency-Key` header, a repeat of the same request by the same user or
    API key answers 200 with the first message and sends nothing; the same key with a
    different request answers 422 `IDEMPOTENCY_KEY_REUSED` and changes nothing. Keys
    are each credential's own: another user's key never answers yours.
    On WhatsApp (and Instagram) a free-form reply after the conversation's
    `reply_window_expires_at` is refused with 422 `REPLY_WINDOW_CLOSED` and nothing is
    queued; on WhatsApp a `template` is what still reaches the customer. A private note
    is never refused."""
    principal = ctx.principal
    idempotency = None
    key = ctx.request.headers.get("idempotency-key")
    if key is not None:
        if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise field_error("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        idempotency = Idempotency.of(
            key, user_id=principal.user_id, api_key_id=principal.api_key_id
        )
    message, created = await post_reply(
        ctx.state.db,
        ctx.state.events,
        org_id=ctx.org_id,
        conversation_id=ctx.path["conversation_id"],
        user_id=principal.user_id,
        content=ctx.body.content,
        attachments=await reply_attachments(
            ctx.state.db,
            ctx.org_id,
            [a.model_dump(exclude_none=True) for a in ctx.body.attachments],
            sendable=ctx.body.private or ctx.state.settings.public_url is not None,
        ),
        private=ctx.body.private,
        idempotency=idempotency,
        template=ctx.body.template.model_dump() if ctx.body.template is not None else None,
    )
    if created and message.status == "queued" and ctx.state.delivery is not None:
        ctx.state.delivery.wake()
    response = json_response(MessagePublic.model_validate(message), 201 if created else 200)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@api.post(
    "/api/messages/{message_id:int}/retry",
    summary="Send a failed reply again",
    response=MessagePublic,
    errors=(409,),
)
async def retry_message(ctx: Context[None, None]) -> MessagePublic:
    """Only a reply that failed can be sent again (not a note, not a customer's
    message, not one sent or still on its way): it is queued afresh, its attempts and
    error cleared, and every console sees `message.status` `queued`."""
    message_id = ctx.path["message_id"]
    async with ctx.tx() as tx:
        message = await get_owned(tx.session, Message, message_id, ctx.org_id)
        if message.direction != "outbound":
            raise Conflict("Only a reply can be sent again, not a customer's message")
        if message.private:
            raise Conflict("A private note is never sent; there is nothing to retry")
        if message.status != "failed":
            raise Conflict(f"Only a failed message can be sent again; this one is {message.status}")
        await tx.session.exec(
            update(Message)
            .where(col(Message.id) == message_id, col(Message.status) == "failed")
            .values(
                status="queued",
                attempts=0,
                error_code=None,
                error=None,
                next_attempt_at=None,
                attempt_started_at=None,
                updated_at=utcnow(),
            )
        )
        retried = await tx.session.get(Message, message_id, populate_existing=True)
        assert retried is not None
        tx.emit(EventType.MESSAGE_STATUS, status_data(retried))
        public = MessagePublic.model_validate(retried)
    if ctx.state.delivery is not None:
        ctx.state.delivery.wake()
    return public
