"""An API client's session: a family of rotating refresh tokens, one login each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, String
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class RefreshFamily(SQLModel, table=True):
    """Every refresh token descended from one login, and the access tokens issued with
    them (they name it): ending it ends them all and closes their sockets."""

    __tablename__ = "refresh_families"
    __table_args__ = (
        Index("ix_refresh_families_user", "user_id"),
        Index("ix_refresh_families_expires_at", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The absolute limit: no refresh carries the family past it.
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Why it ended ("logout", "reuse", "sessions_ended"): the refusal says so.
    end_reason: str | None = Field(default=None, max_length=32)


class RefreshToken(SQLModel, table=True):
    """One refresh token of a family: spent (used_at) by the refresh that replaced it."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family", "family_id"),
        Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    family_id: int = Field(foreign_key="refresh_families.id", ondelete="CASCADE")
    # SHA-256 of the token's 256 random bits: safe to index, useless if read.
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
