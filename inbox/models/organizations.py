"""Tenants and the people and keys that act for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    # The id of the organization's newest event; bumped in the event's transaction.
    last_event_id: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    # Publishable: web forms embed it; it can only create leads.
    lead_form_key: str | None = Field(
        default=None, sa_column=Column(String(64), unique=True, nullable=True)
    )
    # An IANA zone name: where "today" and the analytics' days and weeks begin.
    timezone: str = Field(
        default="UTC", sa_column=Column(String(64), nullable=False, server_default="UTC")
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE", index=True)
    email: str = Field(sa_column=Column(String(320), unique=True, nullable=False))
    name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=200)
    role: str = Field(default="agent", max_length=16)
    is_active: bool = Field(default=True)
    # Carried in every access token; bumping it (password change or reset, deactivation,
    # "sign out everywhere") refuses every token issued before, including after a
    # reactivation.
    session_epoch: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_org", "organization_id"),
        Index("ix_api_keys_owner", "owner_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    role: str = Field(default="agent", max_length=16)
    # Keys are 256 random bits, so a plain SHA-256 is a safe, indexable digest.
    key_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    prefix: str = Field(max_length=16)
    # Comma-separated: "api" (REST and /ws), "ingest" (POST /webhooks/messages/incoming).
    scopes: str = Field(default="api", max_length=64, sa_column_kwargs={"server_default": "api"})
    # Who made it; kept as it was when the key changes hands.
    created_by_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    # The user it acts for: the key stops working while they are deactivated, until an
    # admin transfers it. None only for keys made from the command line.
    owner_id: int | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UsedTicket(SQLModel, table=True):
    """A WebSocket ticket that opened its connection, kept until it expires: single use
    holds across processes with nothing but the database."""

    __tablename__ = "used_tickets"
    __table_args__ = (Index("ix_used_tickets_expires_at", "expires_at"),)

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    expires_at: datetime = Field(sa_type=UTCDateTime)


class ConsoleSession(SQLModel, table=True):
    """A browser's signed-in session: the cookie holds a random token, this its digest.

    It slides: each use (at most one write a minute) pushes the idle limit on, up to
    the absolute one. Ending it (sign-out, or every session of the user) sets ended_at.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (
        Index("ix_console_sessions_user", "user_id"),
        Index("ix_console_sessions_expires_at", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    # SHA-256 of the cookie's 256 random bits: safe to index, useless if read.
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    user_agent: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The absolute limit; the idle one is last_used_at plus the idle timeout.
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
