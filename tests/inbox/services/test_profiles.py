"""The profile fetcher on its own: a bounded queue the webhook never waits on, one
look-up per sender, retries that end, and a stop that leaves nothing running.

Against a real database of each backend and the recording fake Graph API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from connectors.types import InboundMessage
from inbox.db import Database
from inbox.models import Channel, Contact, ContactIdentity, Lead
from inbox.services import accounts
from inbox.services.outbox import OutboxEvent
from inbox.services.profiles import ProfileFetcher
from tests.connectors.fake_platform import (
    FakePlatform,
    instagram_profile,
    rate_limited,
    server_error,
)
from tests.connectors.helpers import instagram_settings, whatsapp_settings
from tests.inbox.platforms import unique_digits


class Published:
    """An event sink that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        self.events.extend(events)

    def of(self, type: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == type]


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture()
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


class Org:
    """An organization whose Instagram channel has senders with unnamed contacts."""

    def __init__(self, db: Database, org_id: int) -> None:
        self.db = db
        self.id = org_id
        self.channel = Channel(
            id=int(unique_digits(8)), organization_id=org_id, kind="instagram", name="ig",
            settings={},
        )
        self.settings = instagram_settings()

    async def sender(self, name: str | None = None) -> str:
        """A first-time sender as ingest leaves them: a contact, its identity, a lead."""
        sender = f"8{unique_digits(15)}"
        async with self.db.session() as session:
            contact = Contact(organization_id=self.id, name=name)
            session.add(contact)
            await session.flush()
            session.add(ContactIdentity(organization_id=self.id, contact_id=contact.id,
                                        kind="instagram", external_id=sender))
            session.add(Lead(organization_id=self.id, contact_id=contact.id,
                             name=name or sender, source="instagram"))
            await session.commit()
        return sender

    async def names(self, sender: str) -> tuple[str | None, list[str | None]]:
        """(the contact's name, its leads' names)."""
        async with self.db.session() as session:
            contact = (await session.exec(
                select(Contact)
                .join(ContactIdentity, col(ContactIdentity.contact_id) == col(Contact.id))
                .where(col(ContactIdentity.external_id) == sender)
            )).one()
            leads = await session.exec(select(Lead.name).where(col(Lead.contact_id) == contact.id))
            return contact.name, list(leads)


def message(sender: str) -> InboundMessage:
    return InboundMessage(
        platform="instagram", channel_key="17841405822304914", sender_id=sender,
        external_id=f"m_{sender}_{time.monotonic_ns()}",
        timestamp=datetime(2026, 1, 15, tzinfo=UTC), content="Hi",
    )


@pytest.fixture()
async def org(db: Database) -> Org:
    return Org(db, (await accounts.create_organization(db, "Profiles")).id)


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)
    return value


async def test_a_full_queue_drops_at_once_and_the_next_message_asks_again(
    db: Database, http: httpx.AsyncClient, platform: FakePlatform, org: Org,
    caplog: pytest.LogCaptureFixture,
) -> None:
    senders = [await org.sender() for _ in range(3)]
    for n, sender in enumerate(senders):
        platform.profile(sender, instagram_profile(sender, f"Person {n}", f"person{n}"))
    sink = Published()
    fetcher = ProfileFetcher(db, sink, http, base_url=platform.base_url, max_queue=2)

    with caplog.at_level(logging.WARNING, logger="inbox.profiles"):
        # Not a coroutine: the webhook that calls it cannot be kept waiting by it.
        fetcher.want(org.channel, org.settings, [message(s) for s in senders])
    assert (fetcher.queued, fetcher.dropped) == (2, 1)
    assert "queue full" in caplog.text and senders[2] in caplog.text

    fetcher.start()
    try:
        for n, sender in enumerate(senders[:2]):
            assert await until(lambda s=sender: _named(org, s)) == (
                f"Person {n}", [f"Person {n}"])
        assert platform.profile_requests(senders[2]) == []
        assert await org.names(senders[2]) == (None, [senders[2]])

        # The dropped sender writes again: this time there is room.
        fetcher.want(org.channel, org.settings, [message(senders[2])])
        assert await until(lambda: _named(org, senders[2])) == ("Person 2", ["Person 2"])
    finally:
        await fetcher.close()
    assert sorted(e["name"] for e in sink.of("contact.updated")) == [
        "Person 0", "Person 1", "Person 2"]
    assert sorted(e["name"] for e in sink.of("lead.updated")) == [
        "Person 0", "Person 1", "Person 2"]
    assert all(len(platform.profile_requests(s)) == 1 for s in senders)


async def _named(org: Org, sender: str) -> tuple[str | None, list[str | None]] | None:
    names = await org.names(sender)
    return names if names[0] else None


async def test_a_contact_with_a_real_name_is_not_looked_up(
    db: Database, http: httpx.AsyncClient, platform: FakePlatform, org: Org,
) -> None:
    named = await org.sender(name="Ann Agent-Typed")
    unnamed = await org.sender()
    for sender in (named, unnamed):
        platform.profile(sender, instagram_profile(sender, "From Instagram", "from.ig"))
    # One worker: the wants are handled in order, so the second done means the first is.
    fetcher = ProfileFetcher(db, Published(), http, base_url=platform.base_url, workers=1)
    fetcher.start()
    try:
        fetcher.want(org.channel, org.settings, [message(named), message(unnamed)])
        await until(lambda: _named(org, unnamed))
    finally:
        await fetcher.close()
    assert platform.profile_requests(named) == []
    assert await org.names(named) == ("Ann Agent-Typed", ["Ann Agent-Typed"])


async def test_retries_end_and_the_sender_rests_before_the_next_try(
    db: Database, http: httpx.AsyncClient, platform: FakePlatform, org: Org,
) -> None:
    failing = await org.sender()
    after = await org.sender()
    platform.profile(failing, server_error())
    platform.profile(after, instagram_profile(after, "Next One", "next.one"))
    fetcher = ProfileFetcher(db, Published(), http, base_url=platform.base_url, workers=1,
                             max_attempts=3, backoff_base=0.05)
    fetcher.start()
    try:
        fetcher.want(org.channel, org.settings, [message(failing)])
        await until(lambda: _count(platform, failing, 3))
        # Given up: a message right after does not start over.
        fetcher.want(org.channel, org.settings, [message(failing), message(after)])
        # One worker, in order: a fourth try would have come before this name.
        await until(lambda: _named(org, after))
    finally:
        await fetcher.close()
    assert [r.status for r in platform.profile_requests(failing)] == [500, 500, 500]
    assert await org.names(failing) == (None, [failing])


async def _count(platform: FakePlatform, sender: str, n: int) -> bool:
    return len(platform.profile_requests(sender)) >= n


async def test_close_stops_the_workers_and_the_retries_waiting(
    db: Database, http: httpx.AsyncClient, platform: FakePlatform, org: Org,
) -> None:
    sender = await org.sender()
    platform.profile(sender, rate_limited(retry_after=1),
                     instagram_profile(sender, "Too Late", "too.late"))
    fetcher = ProfileFetcher(db, Published(), http, base_url=platform.base_url)
    fetcher.start()
    fetcher.want(org.channel, org.settings, [message(sender)])
    await until(lambda: _count(platform, sender, 1))

    await fetcher.close()
    # Had the close waited for the retry, the second request would have gone out.
    await asyncio.sleep(1.5)

    assert [r.status for r in platform.profile_requests(sender)] == [429]
    assert await org.names(sender) == (None, [sender])
    # Closed: later wants are not taken.
    fetcher.want(org.channel, org.settings, [message(await org.sender())])
    assert fetcher.queued == 0


async def test_other_channels_are_not_looked_up(
    db: Database, http: httpx.AsyncClient, platform: FakePlatform, org: Org,
) -> None:
    sender = await org.sender()
    fetcher = ProfileFetcher(db, Published(), http, base_url=platform.base_url)
    sandbox = instagram_settings(sandbox=True)
    fetcher.want(org.channel, sandbox, [message(sender)])
    whatsapp = Channel(id=org.channel.id, organization_id=org.id, kind="whatsapp", name="wa",
                       settings={})
    fetcher.want(whatsapp, whatsapp_settings(), [message(sender)])
    assert fetcher.queued == 0
    fetcher.want(org.channel, org.settings, [message("not-a-number")])
    assert fetcher.queued == 0
