"""Inbound events other than plain messages, each a step of the ingest core
(`inbound_batch`), run when every message before it is stored.

A platform's retry of the same delivery finds every message already stored (the
unique ``(channel_id, external_id)`` key) and changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import col, select

from connectors.phones import to_e164
from connectors.types import (
    Activity,
    ChannelHealth,
    Deletion,
    Echo,
    IdentityChange,
    InboundEvent,
    MessageEdit,
    Reaction,
    ReadReceipt,
    StatusUpdate,
)

from ..events import EventType
from ..models import Conversation, Message, utcnow
from ..views import message_data
from .identities import ContactState, move_identity
from .inbound_notices import apply_health, store_activity
from .message_status import keep_pending, move_status
from .timestamps import utc_text

if TYPE_CHECKING:
    from .arrival import ArrivalRun
    from .inbound_batch import InboundBatch

# Platforms whose sender ids are phone numbers.
PHONE_PLATFORMS = frozenset({"whatsapp", "sms"})


async def apply(batch: InboundBatch, run: ArrivalRun, event: InboundEvent) -> None:
    """Apply one event that is not a plain message."""
    if isinstance(event, StatusUpdate):
        await _status(run, event)
    elif isinstance(event, Reaction):
        await _reaction(batch, run, event)
    elif isinstance(event, Deletion):
        await _deletion(run, event)
    elif isinstance(event, ReadReceipt):
        await _read_receipt(batch, run, event)
    elif isinstance(event, Echo):
        await _echo(batch, run, event)
    elif isinstance(event, MessageEdit):
        await _edit(run, event)
    elif isinstance(event, Activity):
        await store_activity(batch, run, event)
    elif isinstance(event, IdentityChange):
        await move_identity(run, event)
    elif isinstance(event, ChannelHealth):
        await apply_health(run, event)
    else:
        # Unhandled and Unreadable: acknowledged, nothing to store.
        run.result.ignored += 1


def _phone_of(platform: str, sender_id: str) -> str | None:
    """Where sender ids are phone numbers an event naming no phone still names one: the
    same person must resolve to one contact across SMS and WhatsApp."""
    return to_e164(sender_id) if platform in PHONE_PLATFORMS else None


async def _ours(run: ArrivalRun, external_id: str) -> Message | None:
    return (
        await run.session.exec(
            select(Message).where(
                col(Message.channel_id) == run.channel_id,
                col(Message.external_id) == external_id,
            )
        )
    ).first()


async def _reaction(batch: InboundBatch, run: ArrivalRun, event: Reaction) -> None:
    if event.emoji is None:
        await _unreact(batch, run, event)
        return
    # Without a platform id the key names the emoji and the millisecond, so that a
    # removal and a new reaction within one second are not taken for a retry.
    external_id = event.external_id or (
        f"reaction:{event.target_id}:{event.sender_id}:{event.emoji}:"
        f"{int(event.timestamp.timestamp() * 1000)}"
    )
    if await batch.stored(run, external_id):
        run.result.duplicates += 1
        return
    phone = _phone_of(event.platform, event.sender_id)
    contact = await batch.contact_for(
        run, event.platform, event.sender_id, event.sender_name, phone
    )
    batch.store_inbound(
        run,
        contact,
        await batch.conversation_for(run, contact),
        external_id=external_id,
        content=event.emoji or "",
        content_type="reaction",
        attachments=[{"type": "reaction", "target_id": event.target_id, "emoji": event.emoji}],
        timestamp=event.timestamp,
    )


async def _unreact(batch: InboundBatch, run: ArrivalRun, event: Reaction) -> None:
    """A removed reaction takes the sender's reaction to that message away: the
    customer's, or the business's own (``by_business``) in the customer's chat."""
    contact = await batch.known_contact(run, event.platform, event.sender_id)
    if contact is None:
        run.result.ignored += 1
        return
    reactions = select(Message).where(
        col(Message.channel_id) == run.channel_id, col(Message.content_type) == "reaction"
    )
    if event.by_business:
        reactions = reactions.where(
            col(Message.direction) == "outbound",
            col(Message.conversation_id).in_(
                select(Conversation.id).where(col(Conversation.contact_id) == contact.id)
            ),
        )
    else:
        reactions = reactions.where(col(Message.sender_contact_id) == contact.id)
    candidates = await run.session.exec(reactions.order_by(col(Message.id).desc()).limit(50))
    mine = next(
        (
            m
            for m in candidates
            if any(a.get("target_id") == event.target_id for a in m.attachments or [])
        ),
        None,
    )
    if mine is None:
        # Removed already (a retry), or a reaction we never had.
        run.result.duplicates += 1
        return
    await _mark_deleted(run, mine)


async def _mark_deleted(run: ArrivalRun, message: Message) -> None:
    message.content = None
    message.content_type = "deleted"
    message.attachments = []
    message.updated_at = utcnow()
    run.session.add(message)
    await run.session.flush()
    run.result.updated += 1
    run.tell(EventType.MESSAGE_DELETED, message_data(message))


async def _deletion(run: ArrivalRun, event: Deletion) -> None:
    message = await _ours(run, event.target_id)
    direction = "outbound" if event.by_business else "inbound"
    if message is None or message.direction != direction or message.content_type == "deleted":
        run.result.ignored += 1
        return
    await _mark_deleted(run, message)


async def _edit(run: ArrivalRun, event: MessageEdit) -> None:
    """A sender's new text for their message: the message reads it from now on, and
    keeps what it said before in ``platform_data["edits"]``. The business edits only
    what it sent, the customer only what they sent."""
    message = await _ours(run, event.target_id)
    if (
        message is None
        or message.direction != ("outbound" if event.by_business else "inbound")
        or message.content_type == "deleted"
        or not event.content
    ):
        run.result.ignored += 1
        return
    data = dict(message.platform_data or {})
    edits = list(data.get("edits") or [])
    if event.external_id is not None and any(
        e.get("id") == event.external_id for e in edits if isinstance(e, dict)
    ):
        run.result.duplicates += 1
        return
    edits.append(
        {
            "type": "edit",
            "id": event.external_id,
            "previous": message.content,
            "at": utc_text(event.timestamp),
        }
    )
    data["edits"] = edits
    message.platform_data = data
    message.content = event.content
    message.updated_at = utcnow()
    run.session.add(message)
    await run.session.flush()
    run.result.updated += 1
    run.tell(EventType.MESSAGE_UPDATED, message_data(message))


# -- what happened to messages we sent ---------------------------------------


async def _status(run: ArrivalRun, event: StatusUpdate) -> None:
    message = await _ours(run, event.external_id)
    if message is None:
        # Ours before the platform's answer to the send was recorded, or a message
        # sent from elsewhere: acknowledged, kept a while in case it is ours.
        await keep_pending(
            run.tx,
            run.channel_id,
            event.external_id,
            event.status,
            event.error_code,
            event.error_message,
        )
        run.result.ignored += 1
        return
    if message.direction != "outbound":
        run.result.ignored += 1
        return
    assert message.id is not None
    changes: dict[str, Any] = {"status": event.status, "updated_at": utcnow()}
    if event.status == "failed":
        changes["error_code"] = event.error_code
        changes["error"] = event.error_message
    if await move_status(run.tx, message.id, changes):
        run.result.updated += 1
    else:
        run.result.duplicates += 1


async def _read_receipt(batch: InboundBatch, run: ArrivalRun, event: ReadReceipt) -> None:
    contact = await batch.known_contact(run, event.platform, event.reader_id)
    if contact is None:
        run.result.ignored += 1
        return
    stmt = select(Message).where(
        col(Message.channel_id) == run.channel_id,
        col(Message.direction) == "outbound",
        col(Message.status).in_(["sent", "delivered"]),
        col(Message.conversation_id).in_(
            select(Conversation.id).where(col(Conversation.contact_id) == contact.id)
        ),
    )
    if event.message_ids:
        stmt = stmt.where(col(Message.external_id).in_(event.message_ids))
    elif event.watermark is not None:
        stmt = stmt.where(col(Message.ordered_at) <= event.watermark)
    for message in list(await run.session.exec(stmt)):
        assert message.id is not None
        if await move_status(run.tx, message.id, {"status": "read", "updated_at": utcnow()}):
            run.result.updated += 1


async def _echo(batch: InboundBatch, run: ArrivalRun, event: Echo) -> None:
    if await _ours(run, event.external_id) is not None:
        run.result.duplicates += 1  # our own send, already stored as outbound
        return
    contact = await batch.known_contact(run, event.platform, event.recipient_id)
    if contact is None:
        # The business wrote first, from the platform's app, to someone new here:
        # they become a contact (not a lead: they did not come to us).
        phone = _phone_of(event.platform, event.recipient_id)
        contact = await batch.contact_for(
            run, event.platform, event.recipient_id, None, phone, lead=False
        )
    elif await _being_sent(run, contact, event.content):
        # The echo overtook the platform's answer to our send: the delivery worker
        # records the platform id on our message when the answer arrives.
        run.result.duplicates += 1
        return
    # Sent from the platform's own app: kept in the conversation as outbound.
    batch.store_outbound(
        run,
        contact,
        await batch.conversation_for(run, contact),
        external_id=event.external_id,
        content=event.content,
        content_type=event.content_type or ("text" if not event.attachments else "attachment"),
        attachments=list(event.attachments),
        timestamp=event.timestamp,
    )


async def _being_sent(run: ArrivalRun, contact: ContactState, content: str) -> bool:
    """Whether a send of ours with this text to this contact is under way here."""
    found = await run.session.exec(
        select(Message.id)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(
            col(Message.channel_id) == run.channel_id,
            col(Conversation.contact_id) == contact.id,
            col(Message.direction) == "outbound",
            col(Message.status) == "queued",
            col(Message.attempt_started_at).is_not(None),
            func.coalesce(col(Message.content), "") == content,
        )
        .limit(1)
    )
    return found.first() is not None
