"""A unit that writes a contact or a conversation outside the keys it named fails the
key check; one that stays inside them commits. The check is PostgreSQL's: only there
do two batches run side by side."""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable

import pytest

from inbox.db import Database
from inbox.events import EventType
from inbox.models import Channel, Contact, ContactIdentity, Conversation
from inbox.services import accounts
from inbox.services.group_commit import GroupCommit, Work, WroteOutsideKeys
from inbox.services.outbox import NullSink, UnitOfWork

pytestmark = [pytest.mark.postgres, pytest.mark.backend("postgres")]


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def sender(db: Database, org_id: int, sender_id: str) -> tuple[int, int]:
    """A WhatsApp sender's contact and its conversation, on a channel of its own."""
    async with db.session() as session:
        contact = Contact(organization_id=org_id, name=sender_id)
        channel = Channel(organization_id=org_id, kind="whatsapp", name=sender_id, settings={})
        session.add_all([contact, channel])
        await session.flush()
        assert contact.id is not None and channel.id is not None
        identity = ContactIdentity(
            organization_id=org_id, contact_id=contact.id, kind="whatsapp", external_id=sender_id
        )
        conversation = Conversation(
            organization_id=org_id, contact_id=contact.id, channel_id=channel.id
        )
        session.add_all([identity, conversation])
        await session.commit()
        assert conversation.id is not None
        return contact.id, conversation.id


def rename(contact_id: int) -> Work[str]:
    async def work(tx: UnitOfWork) -> str:
        contact = await tx.session.get(Contact, contact_id)
        assert contact is not None
        contact.name = "renamed"
        tx.session.add(contact)
        tx.emit(EventType.CONTACT_UPDATED, {"id": contact_id})
        return "renamed"

    return work


def reopen(conversation_id: int) -> Work[str]:
    async def work(tx: UnitOfWork) -> str:
        conversation = await tx.session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.unread_count += 1
        tx.session.add(conversation)
        return "reopened"

    return work


def key(org_id: int, sender_id: str) -> frozenset[Hashable]:
    return frozenset({(org_id, "whatsapp", sender_id)})


async def test_a_unit_writing_a_contact_under_its_own_key_commits(db: Database):
    org = await accounts.create_organization(db, "Keys kept")
    assert org.id is not None
    contact_id, _ = await sender(db, org.id, "111")
    async with GroupCommit(db, NullSink(), check_keys=True) as commits:
        assert await commits.run(org.id, rename(contact_id), keys=key(org.id, "111")) == "renamed"


async def test_a_unit_writing_another_senders_contact_fails_the_check(db: Database):
    org = await accounts.create_organization(db, "Contact outside")
    assert org.id is not None
    await sender(db, org.id, "111")
    other, _ = await sender(db, org.id, "222")
    async with GroupCommit(db, NullSink(), check_keys=True) as commits:
        with pytest.raises(WroteOutsideKeys, match=str(other)):
            await commits.run(org.id, rename(other), keys=key(org.id, "111"))
        # Nothing of it committed.
        async with db.session() as session:
            stored = await session.get(Contact, other)
            assert stored is not None and stored.name == "222"


async def test_a_unit_writing_another_senders_conversation_fails_the_check(db: Database):
    org = await accounts.create_organization(db, "Conversation outside")
    assert org.id is not None
    _, conversation = await sender(db, org.id, "333")
    async with GroupCommit(db, NullSink(), check_keys=True) as commits:
        with pytest.raises(WroteOutsideKeys):
            await commits.run(org.id, reopen(conversation), keys=key(org.id, "444"))


async def test_a_unit_naming_no_keys_may_write_anything(db: Database):
    org = await accounts.create_organization(db, "No keys")
    assert org.id is not None
    other, _ = await sender(db, org.id, "555")
    async with GroupCommit(db, NullSink(), check_keys=True) as commits:
        assert await commits.run(org.id, rename(other)) == "renamed"


async def test_off_the_check_costs_nothing_and_finds_nothing(db: Database):
    org = await accounts.create_organization(db, "Unchecked")
    assert org.id is not None
    other, _ = await sender(db, org.id, "666")
    async with GroupCommit(db, NullSink(), check_keys=False) as commits:
        assert await commits.run(org.id, rename(other), keys=key(org.id, "777")) == "renamed"
