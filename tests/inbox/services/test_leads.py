"""Creating a lead: one function for the API, web forms and first-time senders, each
lead told as ``lead.created``; a form's lead joins the contact with its email, else its
phone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from connectors.types import LeadSubmission
from inbox.db import Database
from inbox.events import EventType
from inbox.models import Contact, Organization
from inbox.services import accounts
from inbox.services.leads import add_form_lead, add_lead, form_organization, insert_lead
from inbox.services.outbox import OutboxEvent, unit_of_work
from tests.inbox.platforms import unique_digits


class Heard:
    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        self.events.extend(events)


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def organization(db: Database) -> int:
    org = await accounts.create_organization(db, "Leads")
    assert org.id is not None
    return org.id


async def test_a_lead_is_stored_and_told(db: Database) -> None:
    org_id = await organization(db)
    heard = Heard()
    async with unit_of_work(db, org_id, heard) as tx:
        lead = await add_lead(tx, name="Ana", email="ana@example.com", source="api")
    assert lead.id is not None and lead.organization_id == org_id
    assert [(e.type, e.data["id"]) for e in heard.events] == [(EventType.LEAD_CREATED, lead.id)]


async def test_a_lead_is_told_to_the_emit_it_is_given(db: Database) -> None:
    # As ingest tells a first-time sender's lead: in its arrival's order of events.
    org_id = await organization(db)
    heard = Heard()
    told: list[tuple[EventType, dict[str, Any]]] = []
    async with unit_of_work(db, org_id, heard) as tx:
        lead = await insert_lead(
            tx.session,
            organization_id=org_id,
            emit=lambda type, data: told.append((type, data)),
            name="Caro",
            source="whatsapp",
        )
    assert lead.id is not None and lead.organization_id == org_id
    assert [(type, data["id"]) for type, data in told] == [(EventType.LEAD_CREATED, lead.id)]
    assert heard.events == []


async def test_a_form_lead_joins_the_contact_by_email_then_phone_and_keeps_the_rest_as_notes(
    db: Database,
) -> None:
    org_id = await organization(db)
    phone = f"+1555{unique_digits(7)}"
    async with db.session() as session:
        contact = Contact(organization_id=org_id, name="Ben", phone=phone)
        session.add(contact)
        await session.commit()
    submission = LeadSubmission(
        name="Ben",
        email="unknown@example.com",
        phone=phone,
        message="Call me",
        extra={"utm_source": "ad"},
    )
    async with unit_of_work(db, org_id, Heard()) as tx:
        lead = await add_form_lead(tx, submission)
    assert lead.contact_id == contact.id
    assert lead.source == "web_form"
    assert lead.notes == "Call me\n\nutm_source: ad"


async def test_a_form_key_names_its_organization(db: Database) -> None:
    org_id = await organization(db)
    key = f"form-{unique_digits(12)}"
    async with db.session() as session:
        org = await session.get(Organization, org_id)
        assert org is not None
        org.lead_form_key = key
        session.add(org)
        await session.commit()
    assert await form_organization(db, key) == org_id
    assert await form_organization(db, "no such key") is None
