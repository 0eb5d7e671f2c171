"""Attachments' bytes as this service keeps them: fetched from a platform, or uploaded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Text
from sqlmodel import Field, SQLModel

from .types import BigIntId, UTCDateTime, utcnow


class Media(SQLModel, table=True):
    __tablename__ = "media"
    __table_args__ = (
        # The fetch worker's queue.
        Index("ix_media_due", "status", "next_attempt_at"),
        Index("ix_media_message", "message_id"),
        Index("ix_media_org", "organization_id"),
    )

    # Random, not a counter: a link to one file says nothing of the others.
    id: str = Field(primary_key=True, max_length=32)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    # The message whose attachment this is; none yet for an upload not sent.
    message_id: int | None = Field(
        default=None,
        sa_column=Column(BigIntId, ForeignKey("messages.id", ondelete="CASCADE"), nullable=True),
    )
    # Its place in the message's attachments.
    attachment_index: int | None = Field(default=None)
    channel_id: int | None = Field(default=None, foreign_key="channels.id", ondelete="CASCADE")
    source: str = Field(max_length=16)  # inbound | upload
    # What the platform names it by: WhatsApp's media id, or a URL (Instagram, Twilio).
    platform_ref: str | None = Field(default=None, sa_column=Column(Text))
    content_type: str | None = Field(default=None, max_length=255)
    size: int | None = Field(default=None, sa_type=BigInteger)
    sha256: str | None = Field(default=None, max_length=64)
    storage_key: str | None = Field(default=None, max_length=200)
    filename: str | None = Field(default=None, max_length=255)
    status: str = Field(default="pending", max_length=16)  # pending | stored | failed
    error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set while a worker fetches it, so that two workers never fetch the same file.
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
