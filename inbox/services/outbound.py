"""Agents' replies: stored as ``queued`` at once, sent later by the delivery worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from ..db import Database
from ..errors import NotFound
from ..models import Conversation, Message, utcnow
from ..views import conversation_data, message_data
from .inbound import PREVIEW_LENGTH
from .outbox import EventSink, transaction


async def _by_idempotency_key(db: Database, org_id: int, key: str) -> Message | None:
    async with db.session() as session:
        return (
            await session.exec(
                select(Message).where(
                    col(Message.organization_id) == org_id, col(Message.idempotency_key) == key
                )
            )
        ).first()


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
    idempotency_key: str | None,
) -> tuple[Message, bool]:
    """Store an agent's message; answer (message, created). A private note is never sent.

    A repeat with the same idempotency key returns the first message and does nothing.
    """
    if idempotency_key:
        existing = await _by_idempotency_key(db, org_id, idempotency_key)
        if existing is not None:
            return existing, False
    now = utcnow()
    try:
        async with transaction(db, org_id, sink) as tx:
            conv = await tx.session.get(Conversation, conversation_id, with_for_update=True)
            if conv is None or conv.organization_id != org_id:
                raise NotFound(f"Conversation {conversation_id} not found")
            message = Message(
                organization_id=org_id,
                conversation_id=conversation_id,
                channel_id=conv.channel_id,
                direction="outbound",
                sender_user_id=user_id,
                content=content,
                content_type="text" if not attachments else "attachment",
                attachments=attachments,
                private=private,
                # A note is done once stored; a reply waits for the delivery worker.
                status="sent" if private else "queued",
                next_attempt_at=None if private else now,
                idempotency_key=idempotency_key,
                ordered_at=now,
            )
            tx.session.add(message)
            await tx.session.flush()
            tx.emit("message.sent", message_data(message))
            if not private:
                if conv.first_response_at is None:
                    first_inbound = await tx.session.scalar(
                        select(func.min(Message.created_at)).where(
                            col(Message.conversation_id) == conversation_id,
                            col(Message.direction) == "inbound",
                        )
                    )
                    if first_inbound is not None:
                        conv.first_response_at = now
                        conv.first_response_seconds = (now - first_inbound).total_seconds()
                conv.last_message_at = now
                conv.last_message_preview = (content or "[attachment]")[:PREVIEW_LENGTH]
                conv.updated_at = now
                tx.session.add(conv)
                await tx.session.flush()
                tx.emit(
                    "conversation.updated",
                    await conversation_data(tx.session, conversation_id, org_id),
                )
    except IntegrityError:
        # The same key raced us and won: that message is the answer.
        if idempotency_key:
            existing = await _by_idempotency_key(db, org_id, idempotency_key)
            if existing is not None:
                return existing, False
        raise
    return message, True
