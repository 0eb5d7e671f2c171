"""API keys are remembered in-process for a few seconds: a deletion through this
process (or announced by another) counts at once, a deletion nobody announces
within the TTL, and a key that does not exist is never remembered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update
from sqlmodel import col, select

from inbox.auth import Authenticator
from inbox.db import Database
from inbox.errors import AuthenticationFailed
from inbox.models import ApiKey
from inbox.security import api_key_digest, generate_api_key
from inbox.services import accounts
from tests.inbox.conftest import make_settings


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def new_key(db: Database, role: str = "agent") -> tuple[ApiKey, str]:
    org = await accounts.create_organization(db, "Keys")
    assert org.id is not None
    return await accounts.create_api_key(db, org.id, name="dashboard", role=role)


async def delete_behind_its_back(db: Database, row: ApiKey) -> None:
    """As another process would, or an operator with a SQL prompt."""
    async with db.session() as session:
        await session.exec(delete(ApiKey).where(col(ApiKey.id) == row.id))
        await session.commit()


async def last_used_at(db: Database, row: ApiKey) -> datetime | None:
    async with db.session() as session:
        return (
            await session.exec(select(ApiKey.last_used_at).where(col(ApiKey.id) == row.id))
        ).one()


async def refused(auth: Authenticator, key: str) -> bool:
    try:
        await auth.authenticate(key)
    except AuthenticationFailed:
        return True
    return False


async def test_a_key_is_its_organization_and_role(db: Database):
    row, key = await new_key(db, role="admin")
    principal = await Authenticator(db, make_settings(db.url)).authenticate(key)
    assert (principal.organization_id, principal.role, principal.api_key_id) == (
        row.organization_id,
        "admin",
        row.id,
    )
    assert principal.user is None


async def test_a_forgotten_key_is_refused_at_once(db: Database):
    row, key = await new_key(db)
    auth = Authenticator(db, make_settings(db.url), ttl=3600)
    await auth.authenticate(key)

    await delete_behind_its_back(db, row)
    await auth.authenticate(key)  # remembered
    assert row.id is not None
    auth.forget_key(row.id)
    assert await refused(auth, key)


async def test_an_unannounced_deletion_counts_once_the_ttl_has_passed(db: Database):
    row, key = await new_key(db)
    auth = Authenticator(db, make_settings(db.url), ttl=0)
    await auth.authenticate(key)
    await delete_behind_its_back(db, row)
    assert await refused(auth, key)


async def test_a_read_that_a_deletion_overtook_is_not_remembered(db: Database):
    row, key = await new_key(db)
    auth = Authenticator(db, make_settings(db.url), ttl=3600)
    reading = asyncio.create_task(auth.authenticate(key))
    await asyncio.sleep(0)  # the read is under way...
    assert row.id is not None
    auth.forget_key(row.id)  # ...when a deletion is announced
    await reading  # it began before the deletion: it may pass
    await delete_behind_its_back(db, row)  # (the row goes after the read, to be sure it found it)
    assert await refused(auth, key)


async def test_an_unknown_key_is_not_remembered_as_unknown(db: Database):
    org = await accounts.create_organization(db, "Keys")
    auth = Authenticator(db, make_settings(db.url), ttl=3600)
    generated = generate_api_key()
    assert await refused(auth, generated.key)

    async with db.session() as session:
        session.add(
            ApiKey(
                organization_id=org.id,
                name="late",
                key_hash=api_key_digest(generated.key),
                prefix=generated.prefix,
            )
        )
        await session.commit()
    assert (await auth.authenticate(generated.key)).organization_id == org.id


async def test_last_used_at_is_written_at_most_once_a_minute(db: Database):
    row, key = await new_key(db)
    auth = Authenticator(db, make_settings(db.url), ttl=3600)
    before = datetime.now(UTC)
    await auth.authenticate(key)
    first = await last_used_at(db, row)
    assert first is not None and first >= before - timedelta(seconds=1)

    # Rewound behind its back: a use within the minute writes nothing.
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.session() as session:
        await session.exec(
            update(ApiKey).where(col(ApiKey.id) == row.id).values(last_used_at=long_ago)
        )
        await session.commit()
    await auth.authenticate(key)
    assert await last_used_at(db, row) == long_ago

    # A process that reads the key afresh sees the old moment and writes the new one.
    await Authenticator(db, make_settings(db.url)).authenticate(key)
    latest = await last_used_at(db, row)
    assert latest is not None and latest > long_ago
