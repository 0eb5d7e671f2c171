"""Tenants and the people and keys that act for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, String
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
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_org", "organization_id"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    role: str = Field(default="agent", max_length=16)
    # Keys are 256 random bits, so a plain SHA-256 is a safe, indexable digest.
    key_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    prefix: str = Field(max_length=16)
    created_by_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
