"""Leads: creating one, from the API, a web form or a first-time sender, with the
event that tells of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from connectors.types import LeadSubmission

from ..db import Database
from ..events import EventType
from ..models import Contact, Lead, Organization
from ..views import lead_data
from .outbox import UnitOfWork

# Takes an event: a unit of work's `emit`, or an arrival's `tell`, which keeps it in
# the order of the arrival's other events.
Emit = Callable[[EventType, dict[str, Any]], None]


async def add_lead(tx: UnitOfWork, **fields: Any) -> Lead:
    """A new lead of the unit of work's organization, with its ``lead.created`` event."""
    return await insert_lead(tx.session, organization_id=tx.organization_id, emit=tx.emit, **fields)


async def insert_lead(
    session: AsyncSession, *, organization_id: int, emit: Emit, **fields: Any
) -> Lead:
    """Every lead is made here: its row, flushed, and its ``lead.created`` event given
    to ``emit``."""
    lead = Lead(organization_id=organization_id, **fields)
    session.add(lead)
    await session.flush()
    emit(EventType.LEAD_CREATED, lead_data(lead))
    return lead


async def form_organization(db: Database, form_key: str) -> int | None:
    """The organization whose publishable lead form key this is."""
    async with db.session() as session:
        org = (
            await session.exec(
                select(Organization).where(col(Organization.lead_form_key) == form_key)
            )
        ).first()
    return None if org is None else org.id


async def add_form_lead(tx: UnitOfWork, submission: LeadSubmission) -> Lead:
    """A web form's lead, tied to the contact with its email, else its phone, if any."""
    match = None
    for column, value in ((Contact.email, submission.email), (Contact.phone, submission.phone)):
        if value and match is None:
            match = (
                await tx.session.exec(
                    select(Contact.id).where(
                        col(Contact.organization_id) == tx.organization_id, col(column) == value
                    )
                )
            ).first()
    notes = submission.message
    if submission.extra:
        extra = "\n".join(f"{k}: {v}" for k, v in submission.extra.items())
        notes = f"{notes}\n\n{extra}" if notes else extra
    return await add_lead(
        tx,
        contact_id=match,
        name=submission.name,
        email=submission.email,
        phone=submission.phone,
        company=submission.company,
        source="web_form",
        notes=notes,
    )
