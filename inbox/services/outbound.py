"""Agents' replies: stored as ``queued`` at once, sent later by the delivery worker."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from ..db import Database
from ..errors import IdempotencyKeyReused, NotFound
from ..events import EventType
from ..models import Channel, Conversation, Message, utcnow
from ..views import conversation_data, message_data
from . import rollups
from .activity import message_row, record_outbound
from .outbox import EventSink, UnitOfWork, unit_of_work
from .reply_window import check_free_form
from .templates import fill_template
from .webhooks.callbacks import check_can_reply


@dataclass(frozen=True)
class Idempotency:
    """A client's ``Idempotency-Key`` and whose it is: ``scope`` names the credential
    ("user:<id>", "key:<id>"), so one caller's key never answers another's request."""

    key: str
    scope: str

    @classmethod
    def of(cls, key: str, *, user_id: int | None, api_key_id: int | None) -> Idempotency:
        # The user, not the token: a retry after signing in again is still a retry.
        scope = f"user:{user_id}" if user_id is not None else f"key:{api_key_id}"
        return cls(key, scope)


def request_digest(
    conversation_id: int,
    content: str,
    attachments: list[dict[str, Any]],
    private: bool,
    template: dict[str, Any] | None = None,
) -> str:
    """What a reply asked for, as a digest: a retry must ask for the same."""
    request: dict[str, Any] = {
        "conversation_id": conversation_id,
        "content": content,
        "attachments": attachments,
        "private": private,
    }
    if template is not None:
        # Only when given: a reply without one digests as it did before templates.
        request["template"] = template
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def replayed(
    db: Database, org_id: int, idempotency: Idempotency, digest: str
) -> Message | None:
    """The message first stored under this key, or None; IdempotencyKeyReused when that
    message was asked for with another request."""
    async with db.session() as session:
        existing = (
            await session.exec(
                select(Message).where(
                    col(Message.organization_id) == org_id,
                    col(Message.idempotency_scope) == idempotency.scope,
                    col(Message.idempotency_key) == idempotency.key,
                )
            )
        ).first()
    # A message stored before digests were kept has none: it answers as it always did.
    if existing is not None and existing.idempotency_digest not in (None, digest):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request; "
            "use a new key for a new message",
            {"idempotency_key": idempotency.key, "message_id": existing.id},
        )
    return existing


async def post_reply(
    db: Database,
    sink: EventSink,
    *,
    org_id: int,
    conversation_id: int,
    user_id: int | None,
    content: str,
    attachments: list[dict[str, Any]],
    private: bool,
    idempotency: Idempotency | None,
    template: dict[str, Any] | None = None,
) -> tuple[Message, bool]:
    """Store an agent's message; answer (message, created). A private note is never sent.

    A repeat of the same request with the same idempotency key returns the first message
    and does nothing; the key with another request raises IdempotencyKeyReused.
    """
    digest = request_digest(conversation_id, content, attachments, private, template)
    if idempotency is not None:
        existing = await replayed(db, org_id, idempotency, digest)
        if existing is not None:
            return existing, False
    try:
        async with unit_of_work(db, org_id, sink) as tx:
            conv = await tx.session.get(Conversation, conversation_id, with_for_update=True)
            if conv is None or conv.organization_id != org_id:
                raise NotFound(f"Conversation {conversation_id} not found")
            message = await store_reply(
                tx,
                conv,
                user_id=user_id,
                content=content,
                attachments=attachments,
                private=private,
                template=template,
                idempotency=idempotency,
                digest=digest,
            )
    except IntegrityError:
        # The same key raced us and won: that message is the answer, if it was asked
        # for with this same request.
        if idempotency is not None:
            existing = await replayed(db, org_id, idempotency, digest)
            if existing is not None:
                return existing, False
        raise
    return message, True


async def store_reply(
    tx: UnitOfWork,
    conv: Conversation,
    *,
    user_id: int | None,
    content: str,
    attachments: list[dict[str, Any]],
    private: bool,
    template: dict[str, Any] | None,
    idempotency: Idempotency | None,
    digest: str,
) -> Message:
    """An agent's message in ``conv`` (locked by the caller), queued for delivery unless
    it is a note. Refused before anything is stored: a free-form reply outside the
    platform's reply window (a template is what it takes), a template that does not fit."""
    assert conv.id is not None
    org_id, conversation_id = conv.organization_id, conv.id
    now = utcnow()
    content_type = "text" if not attachments else "attachment"
    platform_data: dict[str, Any] = {}
    if not private:
        channel = await tx.session.get(Channel, conv.channel_id)
        assert channel is not None
        check_can_reply(channel)
        if template is not None:
            filled = await fill_template(tx.session, channel, template)
            content, content_type = filled.text, "template"
            platform_data = {"template": filled.payload}
        else:
            check_free_form(channel.kind, conv.last_inbound_at, conv.created_at, now)
    row = message_row(
        organization_id=org_id,
        conversation_id=conversation_id,
        channel_id=conv.channel_id,
        direction="outbound",
        # A note is done once stored; a reply waits for the delivery worker.
        status="sent" if private else "queued",
        content=content,
        content_type=content_type,
        attachments=attachments,
        ordered_at=now,
        now=now,
        platform_data=platform_data,
    )
    message = Message(
        **{
            **row,
            "sender_user_id": user_id,
            "private": private,
            "next_attempt_at": None if private else now,
            "idempotency_key": idempotency.key if idempotency else None,
            "idempotency_scope": idempotency.scope if idempotency else None,
            "idempotency_digest": digest if idempotency else None,
        }
    )
    tx.session.add(message)
    await tx.session.flush()
    tx.emit(EventType.MESSAGE_SENT, message_data(message))
    await rollups.count_messages(await tx.session.connection(), [message.model_dump()])
    if not private:
        # Not a first response yet: that waits for the send (record_first_response).
        record_outbound(conv, now, content, content_type, written_here=True)
        conv.updated_at = now
        tx.session.add(conv)
        await tx.session.flush()
        tx.emit(
            EventType.CONVERSATION_UPDATED,
            await conversation_data(tx.session, conversation_id, org_id),
        )
    return message


async def record_first_response(tx: UnitOfWork, message: Message, sent_at: datetime) -> bool:
    """Make ``message``, a reply the platform has just accepted, its conversation's first
    response if it has none yet; answer whether it did.

    Only a reply that was sent counts: one that failed never reached the customer, and a
    private note is not meant to. The response time runs from the first message the
    customer had sent before the reply was written to ``sent_at``, when they could get
    it. A conversation the customer has not written in yet has nothing to respond to.
    """
    if message.private or message.direction != "outbound":
        return False
    first_inbound = await tx.session.scalar(
        select(func.min(Message.created_at)).where(
            col(Message.conversation_id) == message.conversation_id,
            col(Message.direction) == "inbound",
            col(Message.created_at) <= message.created_at,
        )
    )
    if first_inbound is None:
        return False
    # Compare-and-set: of two replies sent at once by two workers, one is the first.
    recorded = await tx.session.exec(
        update(Conversation)
        .where(
            col(Conversation.id) == message.conversation_id,
            col(Conversation.first_response_at).is_(None),
        )
        .values(
            first_response_at=sent_at,
            first_response_seconds=max(0.0, (sent_at - first_inbound).total_seconds()),
            first_responder_id=message.sender_user_id,
            updated_at=sent_at,
        )
    )
    if recorded.rowcount != 1:
        return False
    tx.emit(
        EventType.CONVERSATION_UPDATED,
        await conversation_data(tx.session, message.conversation_id, message.organization_id),
    )
    return True
