"""Webhooks' channel lookups are remembered in-process: a change through this
process is seen at once (it invalidates), any other within the TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update
from sqlmodel import col

from inbox.db import Database
from inbox.models import Channel
from inbox.services import accounts
from inbox.services.channel_cache import ChannelCache
from tests.inbox.platforms import unique_digits


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
    cache = ChannelCache(db, ttl=3600)
    assert await is_active(cache, channel)

    await deactivate(db, channel)
    assert await is_active(cache, channel)  # remembered
    cache.invalidate()
    assert not await is_active(cache, channel)


async def test_another_process_s_change_is_seen_once_the_ttl_has_passed(db: Database):
    channel = await new_channel(db)
    cache = ChannelCache(db, ttl=0)
    assert await is_active(cache, channel)
    await deactivate(db, channel)
    assert not await is_active(cache, channel)


async def test_unknown_keys_are_not_remembered(db: Database):
    cache = ChannelCache(db, ttl=3600)
    key = f"106{unique_digits(9)}"
    assert await cache.lookup("whatsapp", [key]) == {}
    await new_channel(db, key)
    assert key in await cache.lookup("whatsapp", [key])


async def test_an_organization_s_generic_channel_is_remembered_once_it_exists(db: Database):
    org = await accounts.create_organization(db, "Generic cache")
    assert org.id is not None
    cache = ChannelCache(db, ttl=3600)
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
