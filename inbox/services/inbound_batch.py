"""Plain inbound messages of many deliveries, stored with a few statements.

Under load nearly every delivery is a message from a known sender to an open
conversation. Alone, each costs a handful of statements; the deliveries of one
group commit run here together and share them: one query for the senders'
contacts and, per channel, one for their open conversations; then one insert of
every message, which skips those stored already, and one update of every
conversation touched. What is rare (a new sender, a name learned, a new
conversation) goes through `Delivery`, as it would alone.

Each delivery gets the result and the events, in the same order, that it would
have got running alone after the deliveries queued before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.types import InboundEvent, InboundMessage

from ..events import EventType
from ..models import Contact, ContactIdentity, Conversation, Message, utcnow
from ..schemas.conversations import MessagePublic
from ..views import conversation_public
from .group_commit import Work
from .identities import has_news
from .inbound import (
    Delivery,
    IngestResult,
    StoreDelivery,
    attachments_of,
    insert_message,
    preview,
)
from .outbox import Transaction

_MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]
_CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]
_CONTACTS: Table = Contact.__table__  # type: ignore[attr-defined]
_IDENTITIES: Table = ContactIdentity.__table__  # type: ignore[attr-defined]

# Locked in id order, so that two transactions locking some of the same contacts
# take them in the same order and cannot deadlock.
_CONTACTS_OF = (
    select(
        _IDENTITIES.c.external_id,
        _CONTACTS.c.id,
        _CONTACTS.c.name,
        _IDENTITIES.c.profile_name,
        _IDENTITIES.c.user_id,
    )
    .join_from(_IDENTITIES, _CONTACTS, _CONTACTS.c.id == _IDENTITIES.c.contact_id)
    .where(
        _IDENTITIES.c.organization_id == bindparam("org_id"),
        _IDENTITIES.c.kind == bindparam("kind"),
        _IDENTITIES.c.external_id.in_(bindparam("sender_ids", expanding=True)),
    )
    .order_by(_CONTACTS.c.id)
    .with_for_update(of=_CONTACTS)
)
# Ascending, so that the last row of a contact is its newest open conversation, the
# one `Delivery.conversation_for` picks.
_OPEN_CONVERSATIONS = (
    select(_CONVERSATIONS)
    .where(
        _CONVERSATIONS.c.channel_id == bindparam("channel_id"),
        _CONVERSATIONS.c.contact_id.in_(bindparam("contact_ids", expanding=True)),
        _CONVERSATIONS.c.status != "closed",
    )
    .order_by(_CONVERSATIONS.c.id)
    .with_for_update()
)
_UPDATE_CONVERSATION = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        unread_count=bindparam("b_unread_count"),
        last_message_at=bindparam("b_last_message_at"),
        last_message_preview=bindparam("b_last_message_preview"),
        updated_at=bindparam("b_updated_at"),
    )
)
# A message row's columns that no inbound message sets: their model defaults. The
# NOT NULL ones are inserted; the NULL ones are left out of the insert (every value
# bound costs the insert more Python than SQLite) and added to the event's copy.
_MESSAGE_DEFAULTS = {name: Message.model_fields[name].default for name in ("private", "attempts")}
_MESSAGE_NULLS = dict.fromkeys(
    (
        "sender_user_id",
        "error_code",
        "error",
        "idempotency_key",
        "next_attempt_at",
        "attempt_started_at",
    )
)


def runs_together(events: Sequence[InboundEvent]) -> bool:
    """Whether a delivery holds only messages this module can store together."""
    return bool(events) and all(
        isinstance(event, InboundMessage) and event.external_id is not None for event in events
    )


def writes_under(organization_id: int, events: Sequence[InboundEvent]) -> frozenset[Hashable]:
    """The keys of a delivery that `runs_together`, for `GroupCommit.run`: its senders
    (by each of their ids), whose contacts and conversations it may make or change, and
    their phone numbers,
    by which a new sender may join a contact made on another channel."""
    keys: set[Hashable] = set()
    for event in events:
        assert isinstance(event, InboundMessage)
        keys.add((organization_id, event.platform, event.sender_id))
        if event.sender_user_id:
            # The same person, named by their other id in a message that hides the number.
            keys.add((organization_id, event.platform, event.sender_user_id))
        if event.sender_phone:
            keys.add((organization_id, "phone", event.sender_phone))
    return frozenset(keys)


async def store_together(
    units: Sequence[tuple[Transaction, Work[Any]]],
) -> list[IngestResult]:
    """`group_commit.Together` for `StoreDelivery` units whose events `runs_together`."""
    items = []
    for tx, work in units:
        assert isinstance(work, StoreDelivery) and runs_together(work.events)
        items.append(_Item(tx, work))
    connection = await units[0][0].session.connection()
    return await _Together(connection, items).run()


@dataclass(eq=False, slots=True)
class _Contact:
    id: int
    name: str | None
    # What the sender's identity records: a message telling otherwise goes the slow way.
    profile_name: str | None = None
    user_id: str | None = None

    def news_in(self, event: InboundMessage) -> bool:
        return has_news(self.profile_name, self.user_id, event.sender_name, event.sender_user_id)


@dataclass(eq=False, slots=True)
class _Conversation:
    """A conversation's row, changed in memory and written once at the end."""

    id: int
    organization_id: int
    contact_id: int
    channel_id: int
    status: str
    assignee_id: int | None
    labels: list[str]
    unread_count: int
    last_message_at: datetime | None
    last_message_preview: str | None
    first_response_seconds: float | None
    created_at: datetime
    updated_at: datetime
    changed: bool = False

    @classmethod
    def of_row(cls, row: Any) -> _Conversation:
        return cls(**{name: row[name] for name in _CONVERSATION_FIELDS})

    @classmethod
    def of_model(cls, conversation: Conversation) -> _Conversation:
        return cls(**{name: getattr(conversation, name) for name in _CONVERSATION_FIELDS})


_CONVERSATION_FIELDS = [name for name in _Conversation.__slots__ if name != "changed"]


@dataclass(eq=False, slots=True)
class _Fresh:
    """A message not stored yet, and where it goes."""

    event: InboundMessage
    contact: _Contact | None = None
    conversation: _Conversation | None = None
    # How many of its delivery's events come before its message.received.
    slot: int = 0
    row: dict[str, Any] = field(default_factory=dict)


class _Item:
    """One delivery of the batch."""

    def __init__(self, tx: Transaction, work: StoreDelivery) -> None:
        self.tx = tx
        self.channel = work.channel
        self.messages = [event for event in work.events if isinstance(event, InboundMessage)]
        self.result = IngestResult()
        self.delivery = Delivery(tx, work.channel, self.result)
        self.fresh: list[_Fresh] = []


class _Together:
    def __init__(self, connection: AsyncConnection, items: list[_Item]) -> None:
        self.connection = connection
        self.items = items
        self.contacts: dict[tuple[int, str, str], _Contact] = {}
        self.conversations: dict[tuple[int, int], _Conversation] = {}

    async def run(self) -> list[IngestResult]:
        self._drop_repeats()
        await self._load_contacts()
        await self._load_conversations()
        for item in self.items:
            await self._place(item)
        stored = await self._insert()
        for item in self.items:
            self._tell(item, stored)
        await self._update_conversations()
        return [item.result for item in self.items]

    def _drop_repeats(self) -> None:
        """Count a message given twice in this batch as a duplicate the second time.

        Messages stored before are not looked for here: the insert skips them, and
        they change nothing. Only a message about to make a contact or a conversation
        is looked for first (`_place`)."""
        seen: set[tuple[int, str | None]] = set()
        for item in self.items:
            for event in item.messages:
                key = (_id(item.channel.id), event.external_id)
                if key in seen:
                    item.result.duplicates += 1
                else:
                    seen.add(key)
                    item.fresh.append(_Fresh(event))

    async def _load_contacts(self) -> None:
        wanted: dict[tuple[int, str], set[str]] = defaultdict(set)
        for item in self.items:
            for fresh in item.fresh:
                wanted[(item.channel.organization_id, fresh.event.platform)].add(
                    fresh.event.sender_id
                )
        for (org_id, kind), sender_ids in wanted.items():
            rows = await self.connection.execute(
                _CONTACTS_OF, {"org_id": org_id, "kind": kind, "sender_ids": list(sender_ids)}
            )
            for sender_id, contact_id, name, profile_name, user_id in rows:
                self.contacts[(org_id, kind, sender_id)] = _Contact(
                    contact_id, name, profile_name, user_id
                )

    async def _load_conversations(self) -> None:
        wanted: dict[int, set[int]] = defaultdict(set)
        for item in self.items:
            org_id = item.channel.organization_id
            for fresh in item.fresh:
                contact = self.contacts.get((org_id, fresh.event.platform, fresh.event.sender_id))
                if contact is not None:
                    wanted[_id(item.channel.id)].add(contact.id)
        for channel_id, contact_ids in wanted.items():
            rows = await self.connection.execute(
                _OPEN_CONVERSATIONS, {"channel_id": channel_id, "contact_ids": list(contact_ids)}
            )
            for row in rows.mappings():
                self.conversations[(row["contact_id"], channel_id)] = _Conversation.of_row(row)

    async def _place(self, item: _Item) -> None:
        """Give each fresh message its contact and conversation, making them where the
        sender or the conversation is new, and note where its event goes.

        A message stored before must make nothing: one about to is looked for first,
        and dropped as a duplicate if found."""
        org_id = item.channel.organization_id
        channel_id = _id(item.channel.id)
        placed = []
        for fresh in item.fresh:
            event = fresh.event
            key = (org_id, event.platform, event.sender_id)
            contact = self.contacts.get(key)
            conversation = (
                None if contact is None else self.conversations.get((contact.id, channel_id))
            )
            if contact is None or conversation is None or contact.news_in(event):
                if await item.delivery.stored(event.external_id):
                    item.result.duplicates += 1
                    continue
                contact, conversation = await self._make(item, event)
            fresh.contact = contact
            fresh.conversation = conversation
            fresh.slot = len(item.tx.events)
            fresh.row = _message_row(item, fresh)
            placed.append(fresh)
        item.fresh = placed

    async def _make(self, item: _Item, event: InboundMessage) -> tuple[_Contact, _Conversation]:
        """The sender's contact and conversation, made or updated by `Delivery`."""
        org_id = item.channel.organization_id
        channel_id = _id(item.channel.id)
        key = (org_id, event.platform, event.sender_id)
        contact = self.contacts.get(key)
        orm_contact: Contact | None = None
        if contact is None or contact.news_in(event):
            orm_contact = await item.delivery.contact_for(
                event.platform,
                event.sender_id,
                event.sender_name,
                event.sender_phone,
                user_id=event.sender_user_id,
                at=event.timestamp,
            )
            known = contact or _Contact(_id(orm_contact.id), None)
            contact = self.contacts[key] = _Contact(
                _id(orm_contact.id),
                orm_contact.name,
                event.sender_name or known.profile_name,
                event.sender_user_id or known.user_id,
            )
        conversation = self.conversations.get((contact.id, channel_id))
        if conversation is None:
            if orm_contact is None:
                orm_contact = Contact(id=contact.id, organization_id=org_id, name=contact.name)
            made = await item.delivery.conversation_for(orm_contact)
            conversation = _Conversation.of_model(made)
            self.conversations[(contact.id, channel_id)] = conversation
        return contact, conversation

    async def _insert(self) -> dict[tuple[int, str], int]:
        """Insert every fresh message; answer the ids of those stored, by platform id.

        Only another process storing the same message meanwhile makes one missing."""
        rows = [fresh.row for item in self.items for fresh in item.fresh]
        if not rows:
            return {}
        statement = insert_message(self.connection.dialect.name, "id", "channel_id", "external_id")
        result = await self.connection.execute(statement, rows)
        return {(channel_id, external_id): id_ for id_, channel_id, external_id in result}

    def _tell(self, item: _Item, stored: dict[tuple[int, str], int]) -> None:
        """Count and emit what each of the delivery's messages changed, in order."""
        events = item.tx.events
        before = list(events)
        events.clear()
        taken = 0
        touched: dict[int, tuple[_Conversation, _Contact]] = {}
        for fresh in item.fresh:
            events.extend(before[taken : fresh.slot])
            taken = fresh.slot
            row = fresh.row
            new_id = stored.get((row["channel_id"], row["external_id"]))
            if new_id is None:
                item.result.duplicates += 1
                continue
            row["id"] = new_id
            item.result.stored += 1
            message = MessagePublic.model_validate({**row, **_MESSAGE_NULLS})
            item.tx.emit(EventType.MESSAGE_RECEIVED, message.model_dump(mode="json"))
            conversation, contact = fresh.conversation, fresh.contact
            assert conversation is not None and contact is not None
            conversation.unread_count += 1
            if conversation.status == "pending":
                conversation.status = "open"
            timestamp = fresh.event.timestamp
            if conversation.last_message_at is None or timestamp >= conversation.last_message_at:
                conversation.last_message_at = timestamp
                conversation.last_message_preview = preview(
                    fresh.event.content, fresh.event.content_type
                )
            conversation.changed = True
            touched[conversation.id] = (conversation, contact)
        events.extend(before[taken:])
        for conversation, contact in touched.values():
            conversation.updated_at = utcnow()
            public = conversation_public(
                conversation, contact.name, item.channel.kind, item.channel.name
            )
            item.tx.emit(EventType.CONVERSATION_UPDATED, public.model_dump(mode="json"))

    async def _update_conversations(self) -> None:
        changed = [c for c in self.conversations.values() if c.changed]
        if not changed:
            return
        await self.connection.execute(
            _UPDATE_CONVERSATION,
            [
                {
                    "b_id": c.id,
                    "b_status": c.status,
                    "b_unread_count": c.unread_count,
                    "b_last_message_at": c.last_message_at,
                    "b_last_message_preview": c.last_message_preview,
                    "b_updated_at": c.updated_at,
                }
                for c in changed
            ],
        )


def _message_row(item: _Item, fresh: _Fresh) -> dict[str, Any]:
    event = fresh.event
    assert fresh.contact is not None and fresh.conversation is not None
    now = utcnow()
    return {
        **_MESSAGE_DEFAULTS,
        "organization_id": item.channel.organization_id,
        "conversation_id": fresh.conversation.id,
        "channel_id": item.channel.id,
        "direction": "inbound",
        "sender_contact_id": fresh.contact.id,
        "content": event.content,
        "content_type": event.content_type,
        "attachments": attachments_of(event),
        "platform_data": dict(event.raw or {}),
        "reply_to": event.reply_to,
        "external_id": event.external_id,
        "status": "received",
        "platform_timestamp": event.timestamp,
        "ordered_at": event.timestamp,
        "created_at": now,
        "updated_at": now,
    }


def _id(value: int | None) -> int:
    assert value is not None
    return value
