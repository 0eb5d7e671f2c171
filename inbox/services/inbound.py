"""One delivery's events applied in its transaction: contacts, conversations, messages.

Every kind of inbound event goes through here. A platform's retry of the same
delivery finds every message already stored (the unique ``(channel_id,
external_id)`` key) and changes nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from connectors.phones import to_e164
from connectors.types import (
    Activity,
    ChannelHealth,
    Deletion,
    Echo,
    IdentityChange,
    InboundEvent,
    InboundMessage,
    MessageEdit,
    Reaction,
    ReadReceipt,
    StatusUpdate,
)

from ..events import EventType
from ..models import Channel, Contact, ContactIdentity, Conversation, Lead, Message, utcnow
from ..views import contact_data, conversation_public, lead_data, message_data
from .identities import by_user_id, move_identity, note_identity
from .inbound_notices import apply_health, store_activity
from .message_status import keep_pending, move_status
from .outbox import Transaction

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


@dataclass(frozen=True)
class StoreDelivery:
    """The unit of work of one delivery to ``channel``.

    ``channel`` is read, never written: it may be a cached copy shared by deliveries.
    """

    channel: Channel
    events: Sequence[InboundEvent]

    async def __call__(self, tx: Transaction) -> IngestResult:
        # Made afresh by every attempt: the writer may run a unit of work again.
        result = IngestResult()
        delivery = Delivery(tx, self.channel, result)
        for event in self.events:
            await delivery.apply(event)
        await delivery.flush_conversations()
        return result


# The statements every inbound message runs, built once: building one costs about
# as much as running it.
_STORED = select(Message.id).where(
    col(Message.channel_id) == bindparam("channel_id"),
    col(Message.external_id) == bindparam("external_id"),
)
# The row lock serializes deliveries of one contact, so two messages arriving
# together cannot open two conversations.
_KNOWN_CONTACT = (
    select(Contact, ContactIdentity)
    .join(ContactIdentity, col(ContactIdentity.contact_id) == col(Contact.id))
    .where(
        col(ContactIdentity.organization_id) == bindparam("org_id"),
        col(ContactIdentity.kind) == bindparam("kind"),
        col(ContactIdentity.external_id) == bindparam("sender_id"),
    )
    .with_for_update(of=Contact)
)
# Locked until commit, so what a delivery holds in memory is what gets committed:
# its events are built from it without reading it back.
_OPEN_CONVERSATION = (
    select(Conversation)
    .where(
        col(Conversation.contact_id) == bindparam("contact_id"),
        col(Conversation.channel_id) == bindparam("channel_id"),
        col(Conversation.status) != "closed",
    )
    .order_by(col(Conversation.id).desc())
    .limit(1)
    .with_for_update()
)
_MESSAGE_COLUMNS = [c.key for c in Message.__table__.columns if c.key != "id"]  # type: ignore[attr-defined]


@functools.cache
def insert_message(dialect: str, *returning: str) -> Any:
    """INSERT of messages that does nothing for a platform id stored already.

    No savepoint and no error to recover from: the unique key decides, and the
    statement answers the ``returning`` columns of the rows it stored, nothing for a
    duplicate.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = Message.__table__  # type: ignore[attr-defined]
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
        .returning(*(table.c[name] for name in returning))
    )


class Delivery:
    def __init__(self, tx: Transaction, channel: Channel, result: IngestResult) -> None:
        self.tx = tx
        self.session = tx.session
        self.channel = channel
        self.org_id = channel.organization_id
        self.result = result
        # Conversations touched by this delivery, with their contact: one
        # conversation.updated each, at the end.
        self.touched: dict[int, tuple[Conversation, Contact]] = {}

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
        elif isinstance(event, MessageEdit):
            await self.edit(event)
        elif isinstance(event, Activity):
            await store_activity(self, event)
        elif isinstance(event, IdentityChange):
            await move_identity(self, event)
        elif isinstance(event, ChannelHealth):
            await apply_health(self, event)
        else:
            # Unhandled and Unreadable: acknowledged, nothing to store.
            self.result.ignored += 1

    # -- people -----------------------------------------------------------

    async def contact_for(
        self,
        kind: str,
        sender_id: str,
        name: str | None,
        phone: str | None,
        *,
        user_id: str | None = None,
        at: datetime | None = None,
        lead: bool = True,
    ) -> Contact:
        """The contact behind a platform identity; a first-time sender becomes a contact
        (the same one as on another channel when the E.164 phone matches, or as the
        identity that has ``user_id`` as its second id) and, with ``lead``, a lead.
        A known sender's new profile name or user id is recorded (``identities``)."""
        known = await self._known(kind, sender_id)
        if known is None:
            try:
                async with self.session.begin_nested():
                    return await self._new_identity(kind, sender_id, name, phone, user_id, lead)
            except IntegrityError:
                # Another delivery from the same sender committed first: use its contact.
                known = await self._known(kind, sender_id)
                if known is None:
                    raise
        contact, identity = known
        await note_identity(self, contact, identity, name, user_id, at or utcnow())
        return contact

    async def _known(self, kind: str, sender_id: str) -> tuple[Contact, ContactIdentity] | None:
        params = {"org_id": self.org_id, "kind": kind, "sender_id": sender_id}
        row = (await self.session.exec(_KNOWN_CONTACT, params=params)).first()
        return None if row is None else (row[0], row[1])

    async def _known_contact(self, kind: str, sender_id: str) -> Contact | None:
        known = await self._known(kind, sender_id)
        return None if known is None else known[0]

    async def _new_identity(
        self,
        kind: str,
        sender_id: str,
        name: str | None,
        phone: str | None,
        user_id: str | None,
        make_lead: bool,
    ) -> Contact:
        contact = None
        # A person known by another id of theirs: a user who now hides their number.
        alias = await by_user_id(self, kind, [i for i in (sender_id, user_id) if i])
        if alias is not None:
            contact = await self.session.get(Contact, alias.contact_id, with_for_update=True)
        if contact is None and phone:
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
        created = contact is None
        if contact is None:
            contact = Contact(organization_id=self.org_id, name=name, phone=phone, status="lead")
            self.session.add(contact)
            await self.session.flush()
            if make_lead:
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
                organization_id=self.org_id,
                contact_id=contact.id,
                kind=kind,
                external_id=sender_id,
                profile_name=name,
                user_id=user_id if user_id != sender_id else None,
            )
        )
        # The identity's unique key is what fails when another delivery from the same
        # sender got here first: only after it holds are there events to tell.
        await self.session.flush()
        if lead is not None:
            self.tx.emit(EventType.LEAD_CREATED, lead_data(lead))
        if created:
            self.tx.emit(EventType.CONTACT_CREATED, contact_data(contact))
        return contact

    async def conversation_for(self, contact: Contact) -> Conversation:
        """The contact's open (or pending) conversation on this channel, or a new one."""
        params = {"contact_id": contact.id, "channel_id": self.channel.id}
        conv = (await self.session.exec(_OPEN_CONVERSATION, params=params)).first()
        if conv is not None:
            return conv
        assert contact.id is not None and self.channel.id is not None
        conv = Conversation(
            organization_id=self.org_id, contact_id=contact.id, channel_id=self.channel.id
        )
        self.session.add(conv)
        await self.session.flush()
        self.tx.emit(EventType.CONVERSATION_CREATED, self.conversation_data(conv, contact))
        return conv

    def conversation_data(self, conv: Conversation, contact: Contact) -> dict[str, Any]:
        public = conversation_public(conv, contact.name, self.channel.kind, self.channel.name)
        return public.model_dump(mode="json")

    # -- messages ---------------------------------------------------------

    async def stored(self, external_id: str | None) -> bool:
        """Whether this channel holds a message with this platform id already."""
        if external_id is None:
            return False
        params = {"channel_id": self.channel.id, "external_id": external_id}
        return (await self.session.exec(_STORED, params=params)).first() is not None

    async def _insert(self, message: Message) -> bool:
        """Insert unless the platform id is stored already; the unique key decides."""
        dialect = self.session.get_bind().dialect.name
        values = {key: getattr(message, key) for key in _MESSAGE_COLUMNS}
        new_id = (await self.session.exec(insert_message(dialect, "id"), params=values)).scalar()
        if new_id is None:
            return False
        message.id = new_id
        return True

    async def message(self, event: InboundMessage) -> None:
        if await self.stored(event.external_id):
            self.result.duplicates += 1
            return
        contact = await self.contact_for(
            event.platform,
            event.sender_id,
            event.sender_name,
            event.sender_phone,
            user_id=event.sender_user_id,
            at=event.timestamp,
        )
        await self._store_inbound(
            contact,
            external_id=event.external_id,
            content=event.content,
            content_type=event.content_type,
            attachments=attachments_of(event),
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
        conversation: Conversation | None = None,
        unread: bool = True,
        opens: bool = True,
    ) -> None:
        """Store an inbound row in ``conversation`` (default: the contact's open one).

        ``unread``: it waits for an answer (an activity entry does not); ``opens``: it
        takes a pending conversation back to open, as the customer acting does."""
        conv = conversation or await self.conversation_for(contact)
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
        self.tx.emit(EventType.MESSAGE_RECEIVED, message_data(message))
        if unread:
            conv.unread_count += 1
        if opens and conv.status == "pending":
            conv.status = "open"
        if conv.last_message_at is None or timestamp >= conv.last_message_at:
            conv.last_message_at = timestamp
            conv.last_message_preview = preview(content, content_type)
        self.touched[conv.id] = (conv, contact)

    async def reaction(self, event: Reaction) -> None:
        if event.emoji is None:
            await self._unreact(event)
            return
        # Without a platform id the key names the emoji and the millisecond, so that a
        # removal and a new reaction within one second are not taken for a retry.
        external_id = event.external_id or (
            f"reaction:{event.target_id}:{event.sender_id}:{event.emoji}:"
            f"{int(event.timestamp.timestamp() * 1000)}"
        )
        if await self.stored(external_id):
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

    async def _unreact(self, event: Reaction) -> None:
        """A removed reaction takes the sender's reaction to that message away: the
        customer's, or the business's own (``by_business``) in the customer's chat."""
        contact = await self._known_contact(event.platform, event.sender_id)
        if contact is None:
            self.result.ignored += 1
            return
        reactions = select(Message).where(
            col(Message.channel_id) == self.channel.id, col(Message.content_type) == "reaction"
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
        candidates = await self.session.exec(reactions.order_by(col(Message.id).desc()).limit(50))
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
            self.result.duplicates += 1
            return
        await self._mark_deleted(mine)

    async def _mark_deleted(self, message: Message) -> None:
        message.content = None
        message.content_type = "deleted"
        message.attachments = []
        message.updated_at = utcnow()
        self.session.add(message)
        await self.session.flush()
        self.result.updated += 1
        self.tx.emit(EventType.MESSAGE_DELETED, message_data(message))

    async def edit(self, event: MessageEdit) -> None:
        """A sender's new text for their message: the message reads it from now on, and
        keeps what it said before in ``platform_data["edits"]``. The business edits
        only what it sent, the customer only what they sent."""
        message = await self._ours(event.target_id)
        if (
            message is None
            or message.direction != ("outbound" if event.by_business else "inbound")
            or message.content_type == "deleted"
            or not event.content
        ):
            self.result.ignored += 1
            return
        data = dict(message.platform_data or {})
        edits = list(data.get("edits") or [])
        if event.external_id is not None and any(
            e.get("id") == event.external_id for e in edits if isinstance(e, dict)
        ):
            self.result.duplicates += 1
            return
        edits.append(
            {
                "type": "edit",
                "id": event.external_id,
                "previous": message.content,
                "at": event.timestamp.isoformat().replace("+00:00", "Z"),
            }
        )
        data["edits"] = edits
        message.platform_data = data
        message.content = event.content
        message.updated_at = utcnow()
        self.session.add(message)
        await self.session.flush()
        self.result.updated += 1
        self.tx.emit(EventType.MESSAGE_UPDATED, message_data(message))

    async def flush_conversations(self) -> None:
        for conv, contact in self.touched.values():
            conv.updated_at = utcnow()
            self.session.add(conv)
            await self.session.flush()
            self.tx.emit(EventType.CONVERSATION_UPDATED, self.conversation_data(conv, contact))

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
        if message is None:
            # Ours before the platform's answer to the send was recorded, or a message
            # sent from elsewhere: acknowledged, kept a while in case it is ours.
            assert self.channel.id is not None
            await keep_pending(
                self.tx,
                self.channel.id,
                event.external_id,
                event.status,
                event.error_code,
                event.error_message,
            )
            self.result.ignored += 1
            return
        if message.direction != "outbound":
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
        direction = "outbound" if event.by_business else "inbound"
        if message is None or message.direction != direction or message.content_type == "deleted":
            self.result.ignored += 1
            return
        await self._mark_deleted(message)

    async def echo(self, event: Echo) -> None:
        if await self._ours(event.external_id) is not None:
            self.result.duplicates += 1  # our own send, already stored as outbound
            return
        contact = await self._known_contact(event.platform, event.recipient_id)
        if contact is None:
            # The business wrote first, from the platform's app, to someone new here:
            # they become a contact (not a lead: they did not come to us).
            phone = to_e164(event.recipient_id) if event.platform in PHONE_PLATFORMS else None
            contact = await self.contact_for(
                event.platform, event.recipient_id, None, phone, lead=False
            )
        elif await self._being_sent(contact, event.content):
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
            content_type=event.content_type or ("text" if not event.attachments else "attachment"),
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
        self.tx.emit(EventType.MESSAGE_SENT, message_data(message))
        if conv.last_message_at is None or event.timestamp >= conv.last_message_at:
            conv.last_message_at = event.timestamp
            conv.last_message_preview = preview(event.content, "text")
            self.touched[conv.id] = (conv, contact)

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


# Message types whose structure (``raw``) is shown with them, as a ``data`` attachment.
_STRUCTURED = frozenset({"location", "contacts", "interactive", "button", "order"})


def attachments_of(event: InboundMessage) -> list[dict[str, Any]]:
    attachments = [dict(a) for a in event.attachments]
    if event.raw and event.content_type in _STRUCTURED:
        attachments.append({"type": event.content_type, "data": event.raw})
    return attachments


def preview(content: str | None, content_type: str) -> str:
    if content:
        return content[:PREVIEW_LENGTH]
    return f"[{content_type}]"
