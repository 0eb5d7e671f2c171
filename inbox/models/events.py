"""The outbox: every change's events, written in the change's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from .types import JSONType, UTCDateTime, utcnow


class Event(SQLModel, table=True):
    """``id`` counts 1, 2, 3... within an organization, with no gaps.

    Dense per-organization ids let a subscriber see that it missed an event (a
    jump in the sequence) and fetch exactly the missing ones.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_created", "created_at"),)

    organization_id: int = Field(
        foreign_key="organizations.id", ondelete="CASCADE", primary_key=True
    )
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    type: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
