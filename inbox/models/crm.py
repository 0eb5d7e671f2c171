"""Contacts, the platform identities that point at them, and leads."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Index, Numeric, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import JSONType, UTCDateTime, utcnow


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_org_email", "organization_id", "email"),
        Index("ix_contacts_org_phone", "organization_id", "phone"),
        Index("ix_contacts_org_status", "organization_id", "status"),
        Index("ix_contacts_org_created", "organization_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    company: str | None = Field(default=None, max_length=200)
    position: str | None = Field(default=None, max_length=200)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    status: str = Field(default="lead", max_length=16)
    custom_fields: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    notes: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ContactIdentity(SQLModel, table=True):
    """One sender identity on one platform kind, e.g. ("whatsapp", "15550123456").

    ``profile_name`` is the name the platform last gave for it, ``former_names`` the
    ones it gave before (``{"name", "until"}``, oldest first). ``user_id`` is the
    platform's second id for the same person, where it has one (WhatsApp's
    business-scoped user id). ``replaced_at`` marks a former identity: the person
    moved to another (a changed number), and it still leads to them.
    """

    __tablename__ = "contact_identities"
    __table_args__ = (
        UniqueConstraint("organization_id", "kind", "external_id", name="uq_identity"),
        Index("ix_contact_identities_contact", "contact_id"),
        Index("ix_contact_identities_user_id", "organization_id", "kind", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    contact_id: int = Field(foreign_key="contacts.id", ondelete="CASCADE")
    kind: str = Field(max_length=16)
    external_id: str = Field(max_length=200)
    profile_name: str | None = Field(default=None, max_length=200)
    former_names: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False, server_default="[]")
    )
    user_id: str | None = Field(default=None, max_length=200)
    replaced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Lead(SQLModel, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_org_created", "organization_id", "created_at"),
        Index("ix_leads_org_status", "organization_id", "status"),
        Index("ix_leads_contact", "contact_id"),
        Index("ix_leads_org_converted", "organization_id", "converted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organizations.id", ondelete="CASCADE")
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", ondelete="SET NULL")
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    company: str | None = Field(default=None, max_length=200)
    status: str = Field(default="new", max_length=16)
    source: str | None = Field(default=None, max_length=64)
    value: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    notes: str | None = Field(default=None, sa_column=Column(Text))
    converted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
