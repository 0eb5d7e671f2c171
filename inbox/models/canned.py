"""Canned responses: an organization's ready answers, inserted by short code."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class CannedResponse(SQLModel, table=True):
    __tablename__ = "canned_responses"
    __table_args__ = (
        UniqueConstraint("organization_id", "short_code", name="uq_canned_short_code"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    # What an agent types after "/": lower-case letters, digits, "-" and "_".
    short_code: str = Field(max_length=64)
    # May hold placeholders such as {{contact.name}}, filled in by the console.
    content: str = Field(sa_column=Column(Text, nullable=False))
    created_by_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
