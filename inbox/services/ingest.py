"""Inbound: normalized platform events become contacts, conversations and messages.

One delivery is one transaction: the route answers 200 only after it commits,
and a platform's retry of the same delivery finds every message already stored
(the unique ``(channel_id, external_id)`` key) and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from connectors.phones import to_e164
from connectors.types import (
    Deletion,
    Echo,
    InboundEvent,
    InboundMessage,
    Reaction,
    ReadReceipt,
    StatusUpdate,
)

from ..db import Database
from ..models import Channel, Contact, ContactIdentity, Conversation, Lead, Message, utcnow
from ..views import contact_data, conversation_data, lead_data, message_data
from .message_status import move_status
from .outbox import EventSink, Transaction, transaction

log = logging.getLogger("inbox.ingest")

PREVIEW_LENGTH = 280
# Platforms whose sender ids are phone numbers.
PHONE_PLATFORMS = frozenset({"whatsapp", "sms"})


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    updated: int = 0
    ignored: int = 0


async def ingest(
    db: Database, sink: EventSink, channel: Channel, events: Sequence[InboundEvent]
) -> IngestResult:
    """Store one delivery's events in one transaction and record what changed."""
    result = IngestResult()
    async with transaction(db, channel.organization_id, sink) as tx:
        run = _Ingest(tx, channel, result)
        for event in events:
            await run.apply(event)
        await run.flush_conversations()
    return result


class _Ingest:
    def __init__(self, tx: Transaction, channel: Channel, result: IngestResult) -> None:
        self.tx = tx
        self.session = tx.session
        self.channel = channel
        self.org_id = channel.organization_id
        self.result = result
        # Conversations touched by this delivery: one conversation.updated each, at the end.
        self.touched: dict[int, Conversation] = {}

    async def apply(self, event: InboundEvent) -> None:
        if isinstance(event, InboundMessage):
            await self.message(event)
        elif isinstance(event, StatusUpdate):
            await self.status(event)
        elif isinstance(event, Reaction):
            await self.reaction(event)
        elif isinstance(event, Deletion):
            await self.deletion(event)
        elif isinstance(event, ReadReceipt):
            await self.read_receipt(event)
        elif isinstance(event, Echo):
            await self.echo(event)
        else:  # pragma: no cover - the union above is exhaustive
            self.result.ignored += 1

    # -- people -----------------------------------------------------------

    async def contact_for(
        self, kind: str, sender_id: str, name: str | None, phone: str | None
    ) -> Contact:
        """The contact behind a platform identity; a first-time sender becomes a contact
        (the same one as on another channel when the E.164 phone matches) and a lead."""
        contact = await self._known_contact(kind, sender_id)
        if contact is None:
            try:
                async with self.session.begin_nested():
                    contact = await self._new_identity(kind, sender_id, name, phone)
            except IntegrityError:
                # Another delivery from the same sender committed first: use its contact.
                contact = await self._known_contact(kind, sender_id)
                if contact is None:
                    raise
        elif name and not contact.name:
            contact.name = name
            contact.updated_at = utcnow()
            self.session.add(contact)
            await self.session.flush()
            self.tx.emit("contact.updated", contact_data(contact))
        return contact

    async def _known_contact(self, kind: str, sender_id: str) -> Contact | None:
        contact_id = (
            await self.session.exec(
                select(ContactIdentity.contact_id).where(
                    col(ContactIdentity.organization_id) == self.org_id,
                    col(ContactIdentity.kind) == kind,
                    col(ContactIdentity.external_id) == sender_id,
                )
            )
        ).first()
        if contact_id is None:
            return None
        # The row lock serializes deliveries of one contact, so two messages arriving
        # together cannot open two conversations.
        return await self.session.get(Contact, contact_id, with_for_update=True)

    async def _new_identity(
        self, kind: str, sender_id: str, name: str | None, phone: str | None
    ) -> Contact:
        contact = None
        if phone:
            contact = (
                await self.session.exec(
                    select(Contact)
                    .where(col(Contact.organization_id) == self.org_id, col(Contact.phone) == phone)
                    .order_by(col(Contact.id))
                    .limit(1)
                    .with_for_update()
                )
            ).first()
        lead = None
        if contact is None:
            contact = Contact(organization_id=self.org_id, name=name, phone=phone, status="lead")
            self.session.add(contact)
            await self.session.flush()
            lead = Lead(
                organization_id=self.org_id,
                contact_id=contact.id,
                name=name or phone or sender_id,
                phone=phone,
                source=kind,
            )
            self.session.add(lead)
        assert contact.id is not None
        self.session.add(
            ContactIdentity(
                organization_id=self.org_id, contact_id=contact.id, kind=kind, external_id=sender_id
            )
        )
        # The identity's unique key is what fails when another delivery from the same
        # sender got here first: only after it holds are there events to tell.
        await self.session.flush()
        if lead is not None:
            self.tx.emit("lead.created", lead_data(lead))
            self.tx.emit("contact.created", contact_data(contact))
        return contact

    async def conversation_for(self, contact: Contact) -> Conversation:
        """The contact's open (or pending) conversation on this channel, or a new one."""
        conv = (
            await self.session.exec(
                select(Conversation)
                .where(
                    col(Conversation.contact_id) == contact.id,
                    col(Conversation.channel_id) == self.channel.id,
                    col(Conversation.status) != "closed",
                )
                .order_by(col(Conversation.id).desc())
                .limit(1)
            )
        ).first()
        if conv is not None:
            return conv
        assert contact.id is not None and self.channel.id is not None
        conv = Conversation(
            organization_id=self.org_id, contact_id=contact.id, channel_id=self.channel.id
        )
        self.session.add(conv)
        await self.session.flush()
        assert conv.id is not None
        self.tx.emit(
            "conversation.created", await conversation_data(self.session, conv.id, self.org_id)
        )
        return conv

    # -- messages ---------------------------------------------------------

    async def _exists(self, external_id: str | None) -> bool:
        if external_id is None:
            return False
        found = await self.session.exec(
            select(Message.id).where(
                col(Message.channel_id) == self.channel.id,
                col(Message.external_id) == external_id,
            )
        )
        return found.first() is not None

    async def _insert(self, message: Message) -> bool:
        """Insert unless the platform id is stored already; the unique key decides."""
        try:
            async with self.session.begin_nested():
                self.session.add(message)
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def message(self, event: InboundMessage) -> None:
        if await self._exists(event.external_id):
            self.result.duplicates += 1
            return
        contact = await self.contact_for(
            event.platform, event.sender_id, event.sender_name, event.sender_phone
        )
        await self._store_inbound(
            contact,
            external_id=event.external_id,
            content=event.content,
            content_type=event.content_type,
            attachments=_attachments(event),
            timestamp=event.timestamp,
            platform_data=event.raw,
            reply_to=event.reply_to,
        )

    async def _store_inbound(
        self,
        contact: Contact,
        *,
        external_id: str | None,
        content: str | None,
        content_type: str,
        attachments: list[dict[str, Any]],
        timestamp: datetime,
        platform_data: dict[str, Any] | None = None,
        reply_to: str | None = None,
    ) -> None:
        conv = await self.conversation_for(contact)
        assert conv.id is not None and self.channel.id is not None
        message = Message(
            organization_id=self.org_id,
            conversation_id=conv.id,
            channel_id=self.channel.id,
            direction="inbound",
            sender_contact_id=contact.id,
            content=content,
            content_type=content_type,
            attachments=attachments,
            external_id=external_id,
            status="received",
            platform_timestamp=timestamp,
            ordered_at=timestamp,
            platform_data=dict(platform_data or {}),
            reply_to=reply_to,
        )
        if not await self._insert(message):
            self.result.duplicates += 1
            return
        self.result.stored += 1
        self.tx.emit("message.received", message_data(message))
        conv.unread_count += 1
        if conv.status == "pending":
            conv.status = "open"
        if conv.last_message_at is None or timestamp >= conv.last_message_at:
            conv.last_message_at = timestamp
            conv.last_message_preview = _preview(content, content_type)
        self.touched[conv.id] = conv

    async def reaction(self, event: Reaction) -> None:
        external_id = event.external_id or (
            f"reaction:{event.target_id}:{event.sender_id}:{int(event.timestamp.timestamp())}"
        )
        if await self._exists(external_id):
            self.result.duplicates += 1
            return
        # A reaction names no phone, but where sender ids are phone numbers it is one: the
        # same person must still resolve to one contact across SMS and WhatsApp.
        phone = to_e164(event.sender_id) if event.platform in PHONE_PLATFORMS else None
        contact = await self.contact_for(event.platform, event.sender_id, event.sender_name, phone)
        await self._store_inbound(
            contact,
            external_id=external_id,
            content=event.emoji or "",
            content_type="reaction",
            attachments=[{"type": "reaction", "target_id": event.target_id, "emoji": event.emoji}],
            timestamp=event.timestamp,
        )

    async def flush_conversations(self) -> None:
        for conv_id, conv in self.touched.items():
            conv.updated_at = utcnow()
            self.session.add(conv)
            await self.session.flush()
            self.tx.emit(
                "conversation.updated", await conversation_data(self.session, conv_id, self.org_id)
            )

    # -- what happened to messages we sent -----------------------------------

    async def _ours(self, external_id: str) -> Message | None:
        return (
            await self.session.exec(
                select(Message).where(
                    col(Message.channel_id) == self.channel.id,
                    col(Message.external_id) == external_id,
                )
            )
        ).first()

    async def status(self, event: StatusUpdate) -> None:
        message = await self._ours(event.external_id)
        if message is None or message.direction != "outbound":
            self.result.ignored += 1
            return
        changes: dict[str, Any] = {"status": event.status, "updated_at": utcnow()}
        if event.status == "failed":
            changes["error_code"] = event.error_code
            changes["error"] = event.error_message
        if await move_status(self.tx, message.id, changes):  # type: ignore[arg-type]
            self.result.updated += 1
        else:
            self.result.duplicates += 1

    async def read_receipt(self, event: ReadReceipt) -> None:
        identity = await self._known_contact(event.platform, event.reader_id)
        if identity is None:
            self.result.ignored += 1
            return
        stmt = select(Message).where(
            col(Message.channel_id) == self.channel.id,
            col(Message.direction) == "outbound",
            col(Message.status).in_(["sent", "delivered"]),
            col(Message.conversation_id).in_(
                select(Conversation.id).where(col(Conversation.contact_id) == identity.id)
            ),
        )
        if event.message_ids:
            stmt = stmt.where(col(Message.external_id).in_(event.message_ids))
        elif event.watermark is not None:
            stmt = stmt.where(col(Message.ordered_at) <= event.watermark)
        for message in list(await self.session.exec(stmt)):
            if await move_status(self.tx, message.id, {"status": "read", "updated_at": utcnow()}):  # type: ignore[arg-type]
                self.result.updated += 1

    async def deletion(self, event: Deletion) -> None:
        message = await self._ours(event.target_id)
        if message is None or message.direction != "inbound" or message.content_type == "deleted":
            self.result.ignored += 1
            return
        message.content = None
        message.content_type = "deleted"
        message.attachments = []
        message.updated_at = utcnow()
        self.session.add(message)
        await self.session.flush()
        self.result.updated += 1
        self.tx.emit("message.deleted", message_data(message))

    async def echo(self, event: Echo) -> None:
        if await self._ours(event.external_id) is not None:
            self.result.duplicates += 1  # our own send, already stored as outbound
            return
        contact = await self._known_contact(event.platform, event.recipient_id)
        if contact is None:
            self.result.ignored += 1
            return
        if await self._being_sent(contact, event.content):
            # The echo overtook the platform's answer to our send: the delivery worker
            # records the platform id on our message when the answer arrives.
            self.result.duplicates += 1
            return
        # Sent from the platform's own app: keep it in the conversation as outbound.
        conv = await self.conversation_for(contact)
        assert conv.id is not None and self.channel.id is not None
        message = Message(
            organization_id=self.org_id,
            conversation_id=conv.id,
            channel_id=self.channel.id,
            direction="outbound",
            content=event.content,
            content_type="text" if not event.attachments else "attachment",
            attachments=list(event.attachments),
            external_id=event.external_id,
            status="sent",
            platform_timestamp=event.timestamp,
            ordered_at=event.timestamp,
        )
        if not await self._insert(message):
            self.result.duplicates += 1
            return
        self.result.stored += 1
        self.tx.emit("message.sent", message_data(message))
        if conv.last_message_at is None or event.timestamp >= conv.last_message_at:
            conv.last_message_at = event.timestamp
            conv.last_message_preview = _preview(event.content, "text")
            self.touched[conv.id] = conv

    async def _being_sent(self, contact: Contact, content: str) -> bool:
        """Whether a send of ours with this text to this contact is under way here."""
        found = await self.session.exec(
            select(Message.id)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(
                col(Message.channel_id) == self.channel.id,
                col(Conversation.contact_id) == contact.id,
                col(Message.direction) == "outbound",
                col(Message.status) == "queued",
                col(Message.attempt_started_at).is_not(None),
                func.coalesce(col(Message.content), "") == content,
            )
            .limit(1)
        )
        return found.first() is not None


def _attachments(event: InboundMessage) -> list[dict[str, Any]]:
    attachments = [dict(a) for a in event.attachments]
    if event.raw and event.content_type in ("location", "contacts", "interactive", "button"):
        attachments.append({"type": event.content_type, "data": event.raw})
    return attachments


def _preview(content: str | None, content_type: str) -> str:
    if content:
        return content[:PREVIEW_LENGTH]
    return f"[{content_type}]"
