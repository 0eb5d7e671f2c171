"""The rules of conversation activity: what a stored message is, and what it does to
its conversation.

Pure: no database here. Everything that stores a message (an inbound message, an
activity, a reaction, an echo, an agent's reply or note) builds its row with
`message_row` and records it on its conversation with `record_inbound` or
`record_outbound`; events are made with `message_payload` and
`conversation_payload`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connectors.types import InboundMessage

from ..media.inbound import media_slots
from ..models import Channel, Conversation
from ..schemas.conversations import MessagePublic
from ..views import conversation_public

PREVIEW_LENGTH = 280

# Message types whose structure (``raw``) is shown with them, as a ``data`` attachment.
_STRUCTURED = frozenset({"location", "contacts", "interactive", "button", "order"})

# A message row's columns no stored-on-arrival message sets: their model defaults.
# The NOT NULL ones are part of every row; the NULL ones are left out of the insert
# (each value bound costs the insert more Python than the database) and added to
# the event's copy.
_ROW_DEFAULTS: dict[str, Any] = {"private": False, "attempts": 0}
_ROW_NULLS: dict[str, Any] = dict.fromkeys(
    (
        "sender_user_id",
        "error_code",
        "error",
        "idempotency_key",
        "next_attempt_at",
        "attempt_started_at",
    )
)


class ConversationActivity(Protocol):
    """What activity changes on a conversation: a `Conversation` or a `ConversationState`."""

    status: str
    unread_count: int
    last_message_at: datetime | None
    last_message_preview: str | None
    snoozed_until: datetime | None
    last_inbound_at: datetime | None


@dataclass(eq=False, slots=True)
class ConversationState:
    """A conversation's row, changed in memory and written once (``changed``)."""

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
    snoozed_until: datetime | None = None
    last_inbound_at: datetime | None = None

    @classmethod
    def of_row(cls, row: Any) -> ConversationState:
        return cls(**{name: row[name] for name in CONVERSATION_FIELDS})

    @classmethod
    def of_model(cls, conversation: Conversation) -> ConversationState:
        return cls(**{name: getattr(conversation, name) for name in CONVERSATION_FIELDS})


CONVERSATION_FIELDS = tuple(name for name in ConversationState.__slots__ if name != "changed")

# What a customer's message takes back to open, as the customer acting does: waiting
# on them (pending) or put aside until later (snoozed).
_OPENED_BY_CUSTOMER = frozenset({"pending", "snoozed"})


def preview(content: str | None, content_type: str) -> str:
    """A conversation's line for its last message: its text, or its kind in brackets."""
    if content:
        return content[:PREVIEW_LENGTH]
    return f"[{content_type}]"


def attachments_of(event: InboundMessage) -> list[dict[str, Any]]:
    attachments = media_slots(event.platform, [dict(a) for a in event.attachments])
    if event.raw and event.content_type in _STRUCTURED:
        attachments.append({"type": event.content_type, "data": event.raw})
    return attachments


def message_row(
    *,
    organization_id: int,
    conversation_id: int,
    channel_id: int,
    direction: str,
    status: str,
    content: str | None,
    content_type: str,
    attachments: list[dict[str, Any]],
    ordered_at: datetime,
    now: datetime,
    platform_timestamp: datetime | None = None,
    external_id: str | None = None,
    sender_contact_id: int | None = None,
    platform_data: dict[str, Any] | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """A message's row, every one with the same columns: rows insert together."""
    return {
        **_ROW_DEFAULTS,
        "organization_id": organization_id,
        "conversation_id": conversation_id,
        "channel_id": channel_id,
        "direction": direction,
        "sender_contact_id": sender_contact_id,
        "content": content,
        "content_type": content_type,
        "attachments": attachments,
        "platform_data": dict(platform_data or {}),
        "reply_to": reply_to,
        "external_id": external_id,
        "status": status,
        "platform_timestamp": platform_timestamp,
        "ordered_at": ordered_at,
        "created_at": now,
        "updated_at": now,
    }


def record_inbound(
    conversation: ConversationActivity,
    at: datetime,
    content: str | None,
    content_type: str,
    *,
    unread: bool = True,
    opens: bool = True,
    now: datetime | None = None,
) -> None:
    """A message from the customer, stored (``now``: when it reached us). ``unread``:
    it waits for an answer (an activity entry does not); ``opens``: it takes a pending
    or snoozed conversation back to open, as the customer acting does."""
    now = now or at
    if unread:
        conversation.unread_count += 1
        # A message the customer wrote (not an activity entry) opens the platform's
        # reply window. Counted from its arrival, not the platform's clock: a late
        # delivery then lets a reply through that the platform may still refuse
        # (and the reply fails), never the other way round.
        if conversation.last_inbound_at is None or now > conversation.last_inbound_at:
            conversation.last_inbound_at = now
    if opens and conversation.status in _OPENED_BY_CUSTOMER:
        conversation.status = "open"
        conversation.snoozed_until = None
    _record_latest(conversation, at, content, content_type)


def record_outbound(
    conversation: ConversationActivity,
    at: datetime,
    content: str | None,
    content_type: str,
    *,
    written_here: bool = False,
) -> bool:
    """A message from the business, stored; answer whether the conversation changed.

    A reply ``written_here`` is its last message, whatever the platforms' clocks said
    of the messages before it; an echo (sent from the platform's app) is the last only
    when it is not older than the last one."""
    if written_here:
        conversation.last_message_at = at
        conversation.last_message_preview = preview(content, content_type)
        return True
    return _record_latest(conversation, at, content, content_type)


def _record_latest(
    conversation: ConversationActivity, at: datetime, content: str | None, content_type: str
) -> bool:
    if conversation.last_message_at is not None and at < conversation.last_message_at:
        return False
    conversation.last_message_at = at
    conversation.last_message_preview = preview(content, content_type)
    return True


def message_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The event data of a stored message row (``row`` holds its ``id``)."""
    return MessagePublic.model_validate({**_ROW_NULLS, **row}).model_dump(mode="json")


def conversation_payload(
    conversation: ConversationState, contact_name: str | None, channel: Channel
) -> dict[str, Any]:
    public = conversation_public(conversation, contact_name, channel.kind, channel.name)
    return public.model_dump(mode="json")
