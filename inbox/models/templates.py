"""WhatsApp message templates, as the Business Account last listed them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import JSONType, UTCDateTime, utcnow


class MessageTemplate(SQLModel, table=True):
    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("channel_id", "name", "language", name="uq_message_template"),
        Index("ix_message_templates_org", "organization_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    channel_id: int = Field(foreign_key="channels.id", ondelete="CASCADE")
    # The platform's id for the template, when it gave one.
    external_id: str | None = Field(default=None, max_length=64)
    name: str = Field(max_length=512)
    language: str = Field(max_length=16)
    category: str | None = Field(default=None, max_length=32)
    # APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ...: only APPROVED ones are sent.
    status: str = Field(max_length=32)
    components: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False)
    )
    # What each component needs filled in, read from its text once at sync time:
    # {"body": {"count": 2, "names": []}, "header": ..., "buttons": [...]}.
    parameters: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
