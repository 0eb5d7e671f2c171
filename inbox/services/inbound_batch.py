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

from collections import defaultdict
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.types import InboundMessage

from ..events import EventType
from ..models import Conversation, utcnow
from .activity import ConversationState, attachments_of, conversation_payload, message_row
from .arrival import ArrivalRun, IngestResult, Placed
from .identities import ContactState, new_sender, note_identity
from .inbound import apply
from .ingest_statements import (
    CONTACTS_OF,
    LATEST_CONVERSATION,
    OPEN_CONVERSATIONS,
    STORED,
    UPDATE_CONVERSATION,
    insert_message,
)
from .side_writes import record_side_writes

__all__ = ["ArrivalRun", "InboundBatch", "IngestResult", "record_side_writes"]


class InboundBatch:
    """One run of the ingest core over the arrivals of a batch, in their order."""

    def __init__(self, connection: AsyncConnection, runs: list[ArrivalRun]) -> None:
        self.connection = connection
        self.runs = runs
        self.contacts: dict[tuple[int, str, str], ContactState] = {}
        self.conversations: dict[int, ConversationState] = {}
        self.open: dict[tuple[int, int], ConversationState] = {}
        # (contact, channel) pairs whose open conversation was looked for.
        self.looked: set[tuple[int, int]] = set()
        # Arrivals that may have something to tell: the one running, and those finished
        # since the last flush. A flush looks at these only.
        self.pending: list[ArrivalRun] = []

    async def run(self) -> list[IngestResult]:
        plain = self._drop_repeats()
        await self._load_contacts(plain)
        await self._load_conversations(plain)
        for run in self.runs:
            self.pending.append(run)
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
            CONTACTS_OF, {"org_id": org_id, "kind": kind, "sender_ids": sorted(sender_ids)}
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
            OPEN_CONVERSATIONS, {"channel_id": channel_id, "contact_ids": sorted(contact_ids)}
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
        return (await self.connection.execute(STORED, params)).first() is not None

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
        if contact.has_news(name, user_id):
            if self._waits_on(contact, run):
                # Other arrivals' messages are told with the contact as it was before.
                await self.flush()
            await note_identity(run, contact, kind, sender_id, name, user_id, at or utcnow())
        return contact

    def _waits_on(self, contact: ContactState, current: ArrivalRun) -> bool:
        """Whether an arrival other than ``current`` has yet to tell about ``contact``."""
        return any(
            run is not current
            and (
                any(c.id == contact.id for _, c in run.touched.values())
                or any(isinstance(e, Placed) and e.contact.id == contact.id for e in run.told)
            )
            for run in self.pending
        )

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
        row = (await self.connection.execute(LATEST_CONVERSATION, params)).mappings().first()
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
        runs = [run for run in self.pending if run.told or (run.finished and run.touched)]
        # A finished arrival has told everything once this flush is over.
        self.pending = [run for run in self.pending if not run.finished]
        if not runs:
            return
        placed = [entry for run in runs for entry in run.told if isinstance(entry, Placed)]
        if placed:
            await self._insert(placed)
        stored: list[dict[str, Any]] = []
        for run in runs:
            stored.extend(run.tell_stored())
        if stored:
            await record_side_writes(self.connection, stored)

    async def _insert(self, placed: list[Placed]) -> None:
        """Give each placed row its id, in the order placed, unless the platform id was
        stored already (only another process storing the same message meanwhile, for a
        plain one). Consecutive rows with a platform id go in with one statement."""
        dialect = self.connection.dialect.name
        for keyed, segment in groupby(placed, key=lambda p: p.row["external_id"] is not None):
            if not keyed:
                for p in segment:
                    p.id = (
                        await self.connection.execute(insert_message(dialect, "id"), p.row)
                    ).scalar()
                continue
            rows = list(segment)
            statement = insert_message(dialect, "id", "channel_id", "external_id")
            result = await self.connection.execute(statement, [p.row for p in rows])
            ids = {(channel_id, external_id): id_ for id_, channel_id, external_id in result}
            for p in rows:
                p.id = ids.get((p.row["channel_id"], p.row["external_id"]))

    async def _write_conversations(self) -> None:
        changed = [c for c in self.conversations.values() if c.changed]
        if not changed:
            return
        await self.connection.execute(
            UPDATE_CONVERSATION,
            [
                {
                    "b_id": c.id,
                    "b_status": c.status,
                    "b_unread_count": c.unread_count,
                    "b_last_message_at": c.last_message_at,
                    "b_last_message_preview": c.last_message_preview,
                    "b_last_inbound_at": c.last_inbound_at,
                    "b_updated_at": c.updated_at,
                }
                for c in changed
            ],
        )
