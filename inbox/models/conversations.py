"""Channels, the conversations held on them, and their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import BigIntId, JSONType, UTCDateTime, utcnow


class Channel(SQLModel, table=True):
    __tablename__ = "channels"
    __table_args__ = (
        # Webhooks find their channel by this key before they know the tenant.
        UniqueConstraint("kind", "routing_key", name="uq_channel_routing"),
        Index("ix_channels_org", "organization_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    kind: str = Field(max_length=16)
    name: str = Field(max_length=200)
    routing_key: str | None = Field(default=None, max_length=200)
    settings: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    is_active: bool = Field(default=True)
    # What the platform last said about the account behind the channel: ok,
    # restricted or disabled (sends then fail at once), why, and since when.
    health: str = Field(default="ok", max_length=16, sa_column_kwargs={"server_default": "ok"})
    health_reason: str | None = Field(default=None, sa_column=Column(Text))
    health_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_org_activity", "organization_id", "last_message_at"),
        Index("ix_conversations_org_status", "organization_id", "status"),
        Index("ix_conversations_contact_channel", "contact_id", "channel_id"),
        Index("ix_conversations_org_first_response", "organization_id", "first_response_at"),
        Index("ix_conversations_snoozed_until", "snoozed_until"),
        # The analytics read these alone, never the table: counts of a range by channel
        # and assignee, and medians read in the order of the value.
        Index(
            "ix_conversations_org_created",
            "organization_id",
            "created_at",
            "channel_id",
            "assignee_id",
        ),
        Index("ix_conversations_org_closed", "organization_id", "closed_at", "assignee_id"),
        Index("ix_conversations_org_status_assignee", "organization_id", "status", "assignee_id"),
        Index(
            "ix_conversations_org_responded",
            "organization_id",
            "first_response_at",
            "first_response_seconds",
            "first_responder_id",
            "channel_id",
        ),
        Index(
            "ix_conversations_org_response_order",
            "organization_id",
            "first_response_seconds",
            "first_response_at",
        ),
        Index(
            "ix_conversations_org_responder_order",
            "organization_id",
            "first_responder_id",
            "first_response_seconds",
            "first_response_at",
        ),
        Index(
            "ix_conversations_org_resolution_order",
            "organization_id",
            "resolution_seconds",
            "closed_at",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    contact_id: int = Field(foreign_key="contacts.id", ondelete="CASCADE")
    channel_id: int = Field(foreign_key="channels.id", ondelete="RESTRICT")
    status: str = Field(default="open", max_length=16)
    assignee_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    unread_count: int = Field(default=0)
    last_message_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_message_preview: str | None = Field(default=None, max_length=280)
    first_response_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_response_seconds: float | None = Field(default=None)
    # The user whose reply was the first response. No foreign key: the column was added
    # in place, and a user's deletion leaves a figure no listing reaches.
    first_responder_id: int | None = Field(default=None)
    # When the conversation was last closed, and how long after its opening; None while
    # it is not closed.
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution_seconds: float | None = Field(default=None)
    # The customer's latest message: where a platform's reply window starts.
    last_inbound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set while the status is "snoozed": the conversation reopens by itself then.
    snoozed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        # Platforms retry deliveries; this key turns a retry into a no-op.
        UniqueConstraint("channel_id", "external_id", name="uq_message_external"),
        # A client retrying a send with the same Idempotency-Key gets the first message;
        # keys are the credential's own, so two agents cannot collide on one.
        UniqueConstraint(
            "organization_id",
            "idempotency_scope",
            "idempotency_key",
            name="uq_message_idempotency",
        ),
        Index("ix_messages_delivery", "status", "next_attempt_at"),
        Index("ix_messages_conversation", "conversation_id", "ordered_at", "id"),
        Index("ix_messages_org_created", "organization_id", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    conversation_id: int = Field(foreign_key="conversations.id", ondelete="CASCADE")
    channel_id: int = Field(foreign_key="channels.id", ondelete="RESTRICT")
    direction: str = Field(max_length=16)
    sender_contact_id: int | None = Field(
        default=None, foreign_key="contacts.id", ondelete="SET NULL"
    )
    sender_user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    content: str | None = Field(default=None, sa_column=Column(Text))
    content_type: str = Field(default="text", max_length=32)
    attachments: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    # Everything else the platform sent with the message (Twilio's form fields, ...).
    platform_data: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    # The platform id of the message this one answers, when the platform says.
    reply_to: str | None = Field(default=None, max_length=255)
    private: bool = Field(default=False)
    external_id: str | None = Field(default=None, max_length=255)
    status: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    platform_timestamp: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Conversation order: the platform's time when it gave one, else when we stored it.
    ordered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    idempotency_key: str | None = Field(default=None, max_length=200)
    # Whose key it is ("user:<id>", "key:<id>"), and a digest of the request it came
    # with: the same key with another request is refused, not answered with this one.
    idempotency_scope: str | None = Field(default=None, max_length=64)
    idempotency_digest: str | None = Field(default=None, max_length=64)
    # Outbound delivery bookkeeping: an attempt is recorded before the platform is called.
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempt_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PendingStatus(SQLModel, table=True):
    """A platform's status about a message id no message of ours holds yet.

    The status of a reply can arrive before the platform's answer to its send, which
    is what gives the reply its id: kept here for a while, it is applied when that id
    is recorded. Statuses of messages sent from elsewhere are never claimed and go
    with the pruning.
    """

    __tablename__ = "pending_statuses"
    __table_args__ = (
        Index("ix_pending_statuses_message", "channel_id", "external_id"),
        Index("ix_pending_statuses_received", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channels.id", ondelete="CASCADE")
    external_id: str = Field(max_length=255)
    status: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
