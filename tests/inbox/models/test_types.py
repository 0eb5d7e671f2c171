"""Moments stored and read back: the same instant, aware and in UTC, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from inbox.db import Database
from inbox.models import Event
from inbox.services import accounts

EVENTS = Event.__table__  # type: ignore[attr-defined]
INDIA = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def test_a_moment_reads_back_as_the_same_instant_in_utc(db: Database):
    org = await accounts.create_organization(db, "Moments")
    written = {
        1: datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC),
        # Another zone: stored as the same instant.
        2: datetime(2026, 11, 22, 17, 30, 0, 123456, tzinfo=INDIA),
        # Naive means UTC.
        3: datetime(2026, 11, 22, 12, 0, 0, 123456),
    }
    async with db.session(write=True) as session:
        connection = await session.connection()
        await connection.execute(
            insert(EVENTS),
            [
                {"organization_id": org.id, "id": n, "type": "t", "data": {}, "created_at": at}
                for n, at in written.items()
            ],
        )
        await session.commit()
    async with db.session() as session:
        connection = await session.connection()
        rows = await connection.execute(
            select(EVENTS.c.id, EVENTS.c.created_at)
            .where(EVENTS.c.organization_id == org.id)
            .order_by(EVENTS.c.id)
        )
        read = dict(rows.all())
        noon = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)
        assert read == {1: noon, 2: noon, 3: noon}
        assert all(at.utcoffset() == timedelta(0) for at in read.values())
        # A bound moment compares as the same instant, whatever its zone.
        later = await connection.execute(
            select(EVENTS.c.id).where(
                EVENTS.c.organization_id == org.id,
                EVENTS.c.created_at >= datetime(2026, 11, 22, 17, 30, tzinfo=INDIA),
            )
        )
        assert sorted(later.scalars()) == [1, 2, 3]
        if db.dialect == "sqlite":
            # Naive UTC text, whose order is the order of the instants.
            text = await connection.exec_driver_sql(
                f"SELECT DISTINCT created_at FROM events WHERE organization_id = {org.id}"
            )
            assert text.scalars().all() == ["2026-11-22 12:00:00.123456"]
