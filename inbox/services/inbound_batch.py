"""The ingest core: the events of one or many arrivals stored in one transaction.

An arrival is one webhook delivery's events (`ingest.Arrival`); a batch is the
arrivals one group commit runs together, or one arrival alone. Plain messages are
placed first, their senders' contacts and open conversations looked up for the
whole batch with one query each; their rows are inserted at the next flush, with
one statement, and every conversation touched is updated once at the end. What is
rare (a new sender, news about one, a new conversation) is a step on the way. Every
other kind of event (`inbound.apply`) runs right after a flush, so it finds every
message before it stored.

Each arrival tells its events in the order its events came: what a step tells
waits in the arrival's list behind the messages placed before it, until the flush
that stores them.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from connectors.types import InboundEvent, InboundMessage

from ..events import EventType
from ..models import Channel, Contact, ContactIdentity, Conversation, Message, utcnow
from .activity import (
    ConversationState,
    attachments_of,
    conversation_payload,
    message_payload,
    message_row,
    record_inbound,
    record_outbound,
)
from .identities import ContactState, new_sender, note_identity
from .inbound import apply
from .outbox import Transaction

_MESSAGES: Table = Message.__table__  # type: ignore[attr-defined]  # SQLModel declares no __table__
_CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]  # as above
_CONTACTS: Table = Contact.__table__  # type: ignore[attr-defined]  # as above
_IDENTITIES: Table = ContactIdentity.__table__  # type: ignore[attr-defined]  # as above

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
# Ascending, so that the last row of a contact is its newest open conversation.
# Locked until commit, so what the batch holds in memory is what gets committed.
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
_LATEST_CONVERSATION = (
    select(_CONVERSATIONS)
    .where(
        _CONVERSATIONS.c.channel_id == bindparam("channel_id"),
        _CONVERSATIONS.c.contact_id == bindparam("contact_id"),
    )
    .order_by(_CONVERSATIONS.c.id.desc())
    .limit(1)
    .with_for_update()
)
_STORED = select(_MESSAGES.c.id).where(
    _MESSAGES.c.channel_id == bindparam("channel_id"),
    _MESSAGES.c.external_id == bindparam("external_id"),
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


@functools.cache
def insert_message(dialect: str, *returning: str) -> Any:
    """INSERT of messages that does nothing for a platform id stored already: the
    unique key decides, and only the rows stored answer their ``returning`` columns."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_MESSAGES)
        .on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
        .returning(*(_MESSAGES.c[name] for name in returning))
    )


async def record_side_writes(connection: AsyncConnection, stored: Sequence[dict[str, Any]]) -> None:
    """The place for work that follows from stored messages (rollups, an archive).

    Called once per flush, in the messages' own transaction, with the row of every
    message the flush stored (``id`` included), in the order they were told. Writes
    added here go in one statement per table for all of ``stored``.
    """


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    updated: int = 0
    ignored: int = 0


@dataclass(eq=False, slots=True)
class Placed:
    """A message row waiting for the insert, and what storing it records."""

    row: dict[str, Any]
    conversation: ConversationState
    contact: ContactState
    unread: bool = True
    opens: bool = True
    id: int | None = None


class ArrivalRun:
    """One arrival's part in a batch: its transaction, result and what it tells."""

    def __init__(self, tx: Transaction, channel: Channel, events: Sequence[InboundEvent]) -> None:
        assert channel.id is not None
        self.tx = tx
        self.session: AsyncSession = tx.session
        # Read, never written: it may be a cached copy shared by arrivals.
        self.channel = channel
        self.channel_id: int = channel.id
        self.org_id = channel.organization_id
        self.events = events
        self.result = IngestResult()
        self.told: list[tuple[EventType, dict[str, Any]] | Placed] = []
        # One conversation.updated each, once the arrival is finished.
        self.touched: dict[int, tuple[ConversationState, ContactState]] = {}
        self.repeats: set[int] = set()
        self.finished = False

    def tell(self, type: EventType, data: dict[str, Any]) -> None:
        self.told.append((type, data))


class InboundBatch:
    def __init__(self, connection: AsyncConnection, runs: list[ArrivalRun]) -> None:
        self.connection = connection
        self.runs = runs
        self.contacts: dict[tuple[int, str, str], ContactState] = {}
        self.conversations: dict[int, ConversationState] = {}
        self.open: dict[tuple[int, int], ConversationState] = {}
        # (contact, channel) pairs whose open conversation was looked for.
        self.looked: set[tuple[int, int]] = set()

    async def run(self) -> list[IngestResult]:
        plain = self._drop_repeats()
        await self._load_contacts(plain)
        await self._load_conversations(plain)
        for run in self.runs:
            for index, event in enumerate(run.events):
                if isinstance(event, InboundMessage):
                    if index not in run.repeats:
                        await self._place(run, event)
                else:
                    await self.flush()
                    await apply(self, run, event)
            run.finished = True
        await self.flush()
        await self._write_conversations()
        return [run.result for run in self.runs]

    # -- plain messages ----------------------------------------------------

    def _drop_repeats(self) -> list[tuple[ArrivalRun, InboundMessage]]:
        """The batch's messages, a message given twice counted as a duplicate the
        second time. Messages stored before are not looked for here: the insert skips
        them. Only a message about to make something is looked for first (`_place`)."""
        seen: set[tuple[int, str]] = set()
        plain = []
        for run in self.runs:
            for index, event in enumerate(run.events):
                if not isinstance(event, InboundMessage):
                    continue
                if event.external_id is not None:
                    key = (run.channel_id, event.external_id)
                    if key in seen:
                        run.result.duplicates += 1
                        run.repeats.add(index)
                        continue
                    seen.add(key)
                plain.append((run, event))
        return plain

    async def _load_contacts(self, plain: list[tuple[ArrivalRun, InboundMessage]]) -> None:
        wanted: dict[tuple[int, str], set[str]] = defaultdict(set)
        for run, event in plain:
            wanted[(run.org_id, event.platform)].add(event.sender_id)
        for (org_id, kind), sender_ids in wanted.items():
            await self._lookup_contacts(org_id, kind, sender_ids)

    async def _lookup_contacts(self, org_id: int, kind: str, sender_ids: set[str]) -> None:
        rows = await self.connection.execute(
            _CONTACTS_OF, {"org_id": org_id, "kind": kind, "sender_ids": sorted(sender_ids)}
        )
        for sender_id, contact_id, name, profile_name, user_id in rows:
            self.contacts[(org_id, kind, sender_id)] = ContactState(
                contact_id, name, profile_name, user_id
            )

    async def _load_conversations(self, plain: list[tuple[ArrivalRun, InboundMessage]]) -> None:
        wanted: dict[int, set[int]] = defaultdict(set)
        for run, event in plain:
            contact = self.contacts.get((run.org_id, event.platform, event.sender_id))
            if contact is not None:
                wanted[run.channel_id].add(contact.id)
        for channel_id, contact_ids in wanted.items():
            await self._lookup_open(channel_id, contact_ids)

    async def _lookup_open(self, channel_id: int, contact_ids: set[int]) -> None:
        rows = await self.connection.execute(
            _OPEN_CONVERSATIONS, {"channel_id": channel_id, "contact_ids": sorted(contact_ids)}
        )
        for row in rows.mappings():
            self.open[(row["contact_id"], channel_id)] = self._adopt(row)
        self.looked.update((contact_id, channel_id) for contact_id in contact_ids)

    def _adopt(self, row: Any) -> ConversationState:
        """The state of a conversation row; the one in memory if it was read before."""
        known = self.conversations.get(row["id"])
        if known is None:
            known = self.conversations[row["id"]] = ConversationState.of_row(row)
        return known

    async def _place(self, run: ArrivalRun, event: InboundMessage) -> None:
        contact = self.contacts.get((run.org_id, event.platform, event.sender_id))
        conversation = None if contact is None else self.open.get((contact.id, run.channel_id))
        if (
            contact is None
            or conversation is None
            or contact.has_news(event.sender_name, event.sender_user_id)
        ):
            # A message stored before must make nothing.
            if await self.stored(run, event.external_id):
                run.result.duplicates += 1
                return
            contact = await self.contact_for(
                run,
                event.platform,
                event.sender_id,
                event.sender_name,
                event.sender_phone,
                user_id=event.sender_user_id,
                at=event.timestamp,
            )
            conversation = await self.conversation_for(run, contact)
        self.store_inbound(
            run,
            contact,
            conversation,
            external_id=event.external_id,
            content=event.content,
            content_type=event.content_type,
            attachments=attachments_of(event),
            timestamp=event.timestamp,
            platform_data=event.raw,
            reply_to=event.reply_to,
        )

    # -- steps every kind of event may take ---------------------------------

    async def stored(self, run: ArrivalRun, external_id: str | None) -> bool:
        """Whether the arrival's channel holds a message with this platform id already."""
        if external_id is None:
            return False
        params = {"channel_id": run.channel_id, "external_id": external_id}
        return (await self.connection.execute(_STORED, params)).first() is not None

    async def known_contact(
        self, run: ArrivalRun, kind: str, sender_id: str
    ) -> ContactState | None:
        """The contact behind a platform identity, locked; None for a stranger."""
        key = (run.org_id, kind, sender_id)
        if key not in self.contacts:
            await self._lookup_contacts(run.org_id, kind, {sender_id})
        return self.contacts.get(key)

    async def contact_for(
        self,
        run: ArrivalRun,
        kind: str,
        sender_id: str,
        name: str | None,
        phone: str | None,
        *,
        user_id: str | None = None,
        at: datetime | None = None,
        lead: bool = True,
    ) -> ContactState:
        """The contact behind a platform identity; a first-time sender becomes one
        (`identities.new_sender`), a known sender's news is recorded."""
        contact = await self.known_contact(run, kind, sender_id)
        if contact is None:
            try:
                async with run.session.begin_nested():
                    contact = await new_sender(run, kind, sender_id, name, phone, user_id, lead)
                self.contacts[(run.org_id, kind, sender_id)] = contact
                return contact
            except IntegrityError:
                # Another arrival from the same sender committed first: use its contact.
                contact = await self.known_contact(run, kind, sender_id)
                if contact is None:
                    raise
        await note_identity(run, contact, kind, sender_id, name, user_id, at or utcnow())
        return contact

    async def conversation_for(self, run: ArrivalRun, contact: ContactState) -> ConversationState:
        """The contact's open (or pending) conversation on the channel, or a new one."""
        pair = (contact.id, run.channel_id)
        if pair not in self.open and pair not in self.looked:
            await self._lookup_open(run.channel_id, {contact.id})
        conversation = self.open.get(pair)
        if conversation is None:
            made = Conversation(
                organization_id=run.org_id, contact_id=contact.id, channel_id=run.channel_id
            )
            run.session.add(made)
            await run.session.flush()
            conversation = ConversationState.of_model(made)
            # Written from here on by this batch, never through the session.
            run.session.expunge(made)
            self.conversations[conversation.id] = self.open[pair] = conversation
            run.tell(
                EventType.CONVERSATION_CREATED,
                conversation_payload(conversation, contact.name, run.channel),
            )
        return conversation

    async def latest_conversation(
        self, run: ArrivalRun, contact: ContactState
    ) -> ConversationState | None:
        """The contact's newest conversation on the channel, whatever its status."""
        params = {"channel_id": run.channel_id, "contact_id": contact.id}
        row = (await self.connection.execute(_LATEST_CONVERSATION, params)).mappings().first()
        return None if row is None else self._adopt(row)

    def store_inbound(
        self,
        run: ArrivalRun,
        contact: ContactState,
        conversation: ConversationState,
        *,
        external_id: str | None,
        content: str | None,
        content_type: str,
        attachments: list[dict[str, Any]],
        timestamp: datetime,
        platform_data: dict[str, Any] | None = None,
        reply_to: str | None = None,
        unread: bool = True,
        opens: bool = True,
    ) -> None:
        """Place a message from the customer; `activity.record_inbound` says the rest."""
        row = message_row(
            organization_id=run.org_id,
            conversation_id=conversation.id,
            channel_id=run.channel_id,
            direction="inbound",
            status="received",
            content=content,
            content_type=content_type,
            attachments=attachments,
            ordered_at=timestamp,
            now=utcnow(),
            platform_timestamp=timestamp,
            external_id=external_id,
            sender_contact_id=contact.id,
            platform_data=platform_data,
            reply_to=reply_to,
        )
        run.told.append(Placed(row, conversation, contact, unread, opens))

    def store_outbound(
        self,
        run: ArrivalRun,
        contact: ContactState,
        conversation: ConversationState,
        *,
        external_id: str,
        content: str,
        content_type: str,
        attachments: list[dict[str, Any]],
        timestamp: datetime,
    ) -> None:
        """Place a message the business sent from elsewhere (an echo), as sent."""
        row = message_row(
            organization_id=run.org_id,
            conversation_id=conversation.id,
            channel_id=run.channel_id,
            direction="outbound",
            status="sent",
            content=content,
            content_type=content_type,
            attachments=attachments,
            ordered_at=timestamp,
            now=utcnow(),
            platform_timestamp=timestamp,
            external_id=external_id,
        )
        run.told.append(Placed(row, conversation, contact))

    # -- storing and telling -------------------------------------------------

    async def flush(self) -> None:
        """Insert every placed message, then tell each arrival's events in order."""
        placed = [entry for run in self.runs for entry in run.told if isinstance(entry, Placed)]
        if placed:
            await self._insert(placed)
        stored: list[dict[str, Any]] = []
        for run in self.runs:
            stored.extend(self._tell(run))
        if stored:
            await record_side_writes(self.connection, stored)

    async def _insert(self, placed: list[Placed]) -> None:
        """Give each placed row its id, unless the platform id was stored already
        (only another process storing the same message meanwhile, for a plain one)."""
        dialect = self.connection.dialect.name
        keyed = [p for p in placed if p.row["external_id"] is not None]
        if keyed:
            statement = insert_message(dialect, "id", "channel_id", "external_id")
            result = await self.connection.execute(statement, [p.row for p in keyed])
            ids = {(channel_id, external_id): id_ for id_, channel_id, external_id in result}
            for p in keyed:
                p.id = ids.get((p.row["channel_id"], p.row["external_id"]))
        for p in placed:
            if p.row["external_id"] is None:
                p.id = (
                    await self.connection.execute(insert_message(dialect, "id"), p.row)
                ).scalar()

    def _tell(self, run: ArrivalRun) -> list[dict[str, Any]]:
        stored = []
        for entry in run.told:
            if not isinstance(entry, Placed):
                run.tx.emit(*entry)
                continue
            if entry.id is None:
                run.result.duplicates += 1
                continue
            row = entry.row
            row["id"] = entry.id
            run.result.stored += 1
            stored.append(row)
            at, content, content_type = row["ordered_at"], row["content"], row["content_type"]
            conversation = entry.conversation
            if row["direction"] == "inbound":
                run.tx.emit(EventType.MESSAGE_RECEIVED, message_payload(row))
                record_inbound(
                    conversation, at, content, content_type, unread=entry.unread, opens=entry.opens
                )
            else:
                run.tx.emit(EventType.MESSAGE_SENT, message_payload(row))
                if not record_outbound(conversation, at, content, content_type):
                    continue
            run.touched[conversation.id] = (conversation, entry.contact)
        run.told.clear()
        if run.finished:
            for conversation, contact in run.touched.values():
                conversation.updated_at = utcnow()
                conversation.changed = True
                run.tx.emit(
                    EventType.CONVERSATION_UPDATED,
                    conversation_payload(conversation, contact.name, run.channel),
                )
            run.touched.clear()
        return stored

    async def _write_conversations(self) -> None:
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
