"""Webhook requests as they arrived, kept a few days to be read and replayed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from .types import BigIntId, JSONType, UTCDateTime, utcnow


class WebhookRecord(SQLModel, table=True):
    """One request to a `/webhooks/*` route and what became of it."""

    __tablename__ = "webhook_log"
    __table_args__ = (
        Index("ix_webhook_log_org", "organization_id", "id"),
        Index("ix_webhook_log_received", "received_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    # None until a channel or a key names one: such records are the operator's (CLI).
    organization_id: int | None = Field(
        default=None, foreign_key="organizations.id", ondelete="CASCADE"
    )
    # Not a foreign key: the record outlives a deleted channel.
    channel_id: int | None = Field(default=None)
    kind: str = Field(max_length=32)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    method: str = Field(max_length=8)
    # The URL the platform called (Twilio signs it with the body).
    url: str = Field(max_length=2048)
    # [name, value] pairs, credentials left out.
    headers: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Bytes of body and headers, which the size cap counts.
    size: int = Field(default=0)
    # stored, duplicate, ignored, unknown_channel, bad_signature, malformed, failed
    outcome: str = Field(max_length=24)
    status: int = Field(default=200)
    error: str | None = Field(default=None, max_length=500)
    replay_of: int | None = Field(default=None, sa_type=BigIntId)
