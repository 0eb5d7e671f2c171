"""One arrival's part in a run of the ingest core, and the result it answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from connectors.types import InboundEvent

from ..events import EventType
from ..models import Channel, utcnow
from .activity import (
    ConversationState,
    conversation_payload,
    message_payload,
    record_inbound,
    record_outbound,
)
from .identities import ContactState
from .outbox import UnitOfWork


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

    def __init__(self, tx: UnitOfWork, channel: Channel, events: Sequence[InboundEvent]) -> None:
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

    def tell_stored(self) -> list[dict[str, Any]]:
        """Emit what the arrival told so far, its placed messages as stored or as
        duplicates; once it is finished, one conversation.updated per conversation it
        touched. Answer the rows stored."""
        stored = []
        for entry in self.told:
            if not isinstance(entry, Placed):
                self.tx.emit(*entry)
                continue
            if entry.id is None:
                self.result.duplicates += 1
                continue
            row = entry.row
            row["id"] = entry.id
            self.result.stored += 1
            stored.append(row)
            at, content, content_type = row["ordered_at"], row["content"], row["content_type"]
            conversation = entry.conversation
            if row["direction"] == "inbound":
                self.tx.emit(EventType.MESSAGE_RECEIVED, message_payload(row))
                record_inbound(
                    conversation,
                    at,
                    content,
                    content_type,
                    unread=entry.unread,
                    opens=entry.opens,
                    now=row["created_at"],
                )
            else:
                self.tx.emit(EventType.MESSAGE_SENT, message_payload(row))
                if not record_outbound(conversation, at, content, content_type):
                    continue
            self.touched[conversation.id] = (conversation, entry.contact)
        self.told.clear()
        if self.finished:
            for conversation, contact in self.touched.values():
                conversation.updated_at = utcnow()
                conversation.changed = True
                self.tx.emit(
                    EventType.CONVERSATION_UPDATED,
                    conversation_payload(conversation, contact.name, self.channel),
                )
            self.touched.clear()
        return stored
