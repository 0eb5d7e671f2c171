"""The names of the events the service emits: one place to spell each of them."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    # Stored in the outbox: they carry an id and a client may resume from it.
    LEAD_CREATED = "lead.created"
    LEAD_UPDATED = "lead.updated"
    LEAD_DELETED = "lead.deleted"
    CONTACT_CREATED = "contact.created"
    CONTACT_UPDATED = "contact.updated"
    CONTACT_DELETED = "contact.deleted"
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_SENT = "message.sent"
    MESSAGE_DELETED = "message.deleted"
    MESSAGE_UPDATED = "message.updated"
    MESSAGE_STATUS = "message.status"
    CHANNEL_UPDATED = "channel.updated"
    CANNED_RESPONSE_CREATED = "canned_response.created"
    CANNED_RESPONSE_UPDATED = "canned_response.updated"
    CANNED_RESPONSE_DELETED = "canned_response.deleted"
    # An outgoing webhook endpoint turned off: its receiver is gone or kept failing.
    WEBHOOK_DISABLED = "webhook.disabled"
    # Live only: figures, presence and typing, never stored.
    METRICS_UPDATE = "metrics.update"
    AGENT_STATUS = "agent.status"
    TYPING = "typing"
    VIEWING = "viewing"
