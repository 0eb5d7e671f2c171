from __future__ import annotations

from starlette.responses import Response

from ..errors import field_error
from ..media.attachments import reply_attachments
from ..schemas.conversation_start import StartConversation, StartedConversation
from ..schemas.conversations import MessagePublic
from ..services.conversation_start import Recipient, start_conversation
from ..services.outbound import Idempotency
from ..views import load_conversation
from ..web.endpoint import Context, Endpoints, json_response
from .messages import MAX_IDEMPOTENCY_KEY

api = Endpoints("conversations")


@api.post(
    "/api/conversations",
    summary="Start a conversation: write to a contact first, on a channel",
    body=StartConversation,
    response=StartedConversation,
    status=201,
)
async def create_conversation(ctx: Context[None, StartConversation]) -> Response:
    """Opens the contact's conversation on the channel, or reuses the one not yet
    closed, and queues its first `message` as a reply (delivery follows as
    `message.status`). Give `contact_id`, or `to`: a phone number in international
    format on WhatsApp and SMS, the person's platform id elsewhere; a person not known
    yet becomes a contact; a `contact_id` with no identity on the channel's platform (nor
    a phone number, on WhatsApp and SMS) is refused with 422. On WhatsApp a customer who
    has not written on the channel for 24 hours (or ever), in this conversation or an
    earlier one, is sent a `template`: free-form text is refused with 422
    `REPLY_WINDOW_CLOSED`. An `Idempotency-Key` header works as for replies: a repeat
    answers 200 with the first conversation and message."""
    body = ctx.body
    principal = ctx.principal
    idempotency = None
    key = ctx.request.headers.get("idempotency-key")
    if key is not None:
        if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise field_error("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        idempotency = Idempotency.of(
            key, user_id=principal.user_id, api_key_id=principal.api_key_id
        )
    message = body.message.model_dump(exclude_none=True, exclude={"private"})
    requested = message.get("attachments") or []
    attachments = (
        await reply_attachments(
            ctx.state.db, ctx.org_id, requested, sendable=ctx.state.settings.public_url is not None
        )
        if requested
        else None
    )
    started = await start_conversation(
        ctx.state.db,
        ctx.state.events,
        org_id=ctx.org_id,
        channel_id=body.channel_id,
        recipient=Recipient(contact_id=body.contact_id, to=body.to),
        user_id=principal.user_id,
        message=message,
        idempotency=idempotency,
        attachments=attachments,
    )
    if started.created and ctx.state.delivery is not None:
        ctx.state.delivery.wake()
    async with ctx.state.db.session() as session:
        conversation = await load_conversation(session, started.conversation_id, ctx.org_id)
    answer = StartedConversation(
        conversation=conversation, message=MessagePublic.model_validate(started.message)
    )
    response = json_response(answer, 201 if started.created else 200)
    if not started.created:
        response.headers["Idempotent-Replayed"] = "true"
    return response
