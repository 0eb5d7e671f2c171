"""Webhooks' channel lookups are remembered in-process: a change through this
process is seen at once (it invalidates), any other within the TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update
from sqlmodel import col

from connectors.settings import ChannelSettings, WhatsAppSettings
from inbox.db import Database
from inbox.models import Channel
from inbox.services import accounts
from inbox.services.channel_cache import ChannelCache
from inbox.services.channel_secrets import ChannelSecrets
from tests.inbox.platforms import unique_digits

SECRETS = ChannelSecrets([Fernet.generate_key()])


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def new_channel(db: Database, key: str | None = None) -> Channel:
    org = await accounts.create_organization(db, "Channel cache")
    key = key or f"106{unique_digits(9)}"
    channel = Channel(
        organization_id=org.id,
        kind="whatsapp",
        name="line",
        routing_key=key,
        settings={
            "phone_number_id": key,
            "access_token": "t",
            "app_secret": "s",
            "verify_token": "v",
        },
    )
    async with db.session() as session:
        session.add(channel)
        await session.commit()
    return channel


async def deactivate(db: Database, channel: Channel) -> None:
    """Behind the cache's back, as another process would."""
    async with db.session() as session:
        await session.exec(
            update(Channel).where(col(Channel.id) == channel.id).values(is_active=False)
        )
        await session.commit()


async def is_active(cache: ChannelCache, channel: Channel) -> bool:
    assert channel.routing_key is not None
    found = await cache.lookup("whatsapp", [channel.routing_key])
    return found[channel.routing_key].channel.is_active


async def test_an_invalidation_shows_a_change_at_once(db: Database):
    channel = await new_channel(db)
    cache = ChannelCache(db, SECRETS, ttl=3600)
    assert await is_active(cache, channel)

    await deactivate(db, channel)
    assert await is_active(cache, channel)  # remembered
    cache.invalidate()
    assert not await is_active(cache, channel)


async def test_another_process_s_change_is_seen_once_the_ttl_has_passed(db: Database):
    channel = await new_channel(db)
    cache = ChannelCache(db, SECRETS, ttl=0)
    assert await is_active(cache, channel)
    await deactivate(db, channel)
    assert not await is_active(cache, channel)


async def test_unknown_keys_are_not_remembered(db: Database):
    cache = ChannelCache(db, SECRETS, ttl=3600)
    key = f"106{unique_digits(9)}"
    assert await cache.lookup("whatsapp", [key]) == {}
    await new_channel(db, key)
    assert key in await cache.lookup("whatsapp", [key])


async def test_an_organization_s_generic_channel_is_remembered_once_it_exists(db: Database):
    org = await accounts.create_organization(db, "Generic cache")
    assert org.id is not None
    cache = ChannelCache(db, SECRETS, ttl=3600)
    assert await cache.generic(org.id) is None  # not remembered: the first message makes one

    channel = Channel(organization_id=org.id, kind="generic", name="API", settings={})
    async with db.session() as session:
        session.add(channel)
        await session.commit()
    found = await cache.generic(org.id)
    assert found is not None and found.id == channel.id and found.is_active

    await deactivate(db, channel)
    remembered = await cache.generic(org.id)
    assert remembered is not None and remembered.is_active
    cache.invalidate()
    changed = await cache.generic(org.id)
    assert changed is not None and not changed.is_active


class CountingSecrets(ChannelSecrets):
    """The real thing, counting the channels it decrypts."""

    def __init__(self) -> None:
        super().__init__([Fernet.generate_key()])
        self.opened: list[int | None] = []

    def open(self, channel: Channel) -> ChannelSettings:
        self.opened.append(channel.id)
        return super().open(channel)


async def sealed_channel(db: Database, secrets: ChannelSecrets) -> Channel:
    org = await accounts.create_organization(db, "Sealed channel")
    key = f"106{unique_digits(9)}"
    settings = WhatsAppSettings.model_validate(
        {"phone_number_id": key, "access_token": "t", "app_secret": "s", "verify_token": "v"}
    )
    channel = Channel(organization_id=org.id, kind="whatsapp", name="line", routing_key=key,
                      settings=secrets.seal(settings))
    async with db.session() as session:
        session.add(channel)
        await session.commit()
    return channel


async def test_a_channel_s_secrets_are_decrypted_once_not_per_delivery(own_database: str):
    db = Database(own_database)
    try:
        await decrypted_once(db)
    finally:
        await db.dispose()


async def decrypted_once(db: Database) -> None:
    secrets = CountingSecrets()
    channel = await sealed_channel(db, secrets)
    assert channel.routing_key is not None
    # Read anew every time (no TTL), as by every delivery after the TTL has passed.
    cache = ChannelCache(db, secrets, ttl=0)

    for _ in range(20):
        [known] = (await cache.lookup("whatsapp", [channel.routing_key])).values()
        assert known.settings.app_secret.get_secret_value() == "s"
        assert "s" in await cache.app_secrets("whatsapp")
    assert secrets.opened == [channel.id]

    # Changed by another process (a rotation, a new token): decrypted again, once.
    async with db.session() as session:
        row = await session.get(Channel, channel.id)
        assert row is not None
        row.settings = secrets.seal(
            WhatsAppSettings.model_validate({**secrets.open(row).stored(), "access_token": "new"})
        )
        session.add(row)
        await session.commit()
    secrets.opened.clear()
    for _ in range(5):
        [known] = (await cache.lookup("whatsapp", [channel.routing_key])).values()
        assert known.settings.access_token.get_secret_value() == "new"
    assert secrets.opened == [channel.id]


async def test_a_channel_whose_stored_settings_do_not_validate_is_left_out_of_the_active_list(
    db: Database, caplog: pytest.LogCaptureFixture
):
    """One organization's broken row (an old shape, a hand-made insert) must not stop the
    deliveries of every other organization matched against the list."""
    good = await new_channel(db)
    org = await accounts.create_organization(db, "Broken row")
    broken = Channel(
        organization_id=org.id, kind="whatsapp", name="broken", settings={"access_token": "t0ken"}
    )
    async with db.session() as session:
        session.add(broken)
        await session.commit()
    cache = ChannelCache(db, SECRETS, ttl=0)

    for _ in range(2):
        ids = [known.channel.id for known in await cache.active("whatsapp")]
        assert good.id in ids and broken.id not in ids

    told = [r for r in caplog.records if "left out of webhook routing" in r.getMessage()]
    assert len(told) == 1, "told once, not at every reload"
    assert f"channel {broken.id} " in told[0].getMessage()
    assert "phone_number_id" in told[0].getMessage()
    assert "t0ken" not in caplog.text
