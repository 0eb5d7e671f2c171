"""The outbox: every change's events, written in the change's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from .types import BigIntId, JSONType, UTCDateTime, utcnow


class Event(SQLModel, table=True):
    __tablename__ = "events"
    # AUTOINCREMENT: SQLite must never reuse the id of a pruned event.
    __table_args__ = (
        Index("ix_events_org_id", "organization_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True))
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    type: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
