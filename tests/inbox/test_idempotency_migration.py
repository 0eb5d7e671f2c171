"""Migration 0006 scopes idempotency keys per credential without losing a message, on
SQLite and PostgreSQL, both ways."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from inbox import migrate
from inbox.db import Database
from inbox.models import Channel, Contact, Conversation, Message, Organization, User
from inbox.services.outbound import Idempotency, post_reply
from inbox.services.outbox import NullSink
from tests.inbox.test_migrations import empty_database  # noqa: F401 - the fixture


async def _seed(db: Database) -> dict[str, int]:
    async with db.session() as session:
        org = Organization(name="Before")
        session.add(org)
        await session.flush()
        assert org.id is not None
        ana = User(organization_id=org.id, email="ana@before.example", password_hash="x")
        bob = User(organization_id=org.id, email="bob@before.example", password_hash="x")
        channel = Channel(organization_id=org.id, kind="generic", name="API")
        contact = Contact(organization_id=org.id, name="Sam")
        session.add_all([ana, bob, channel, contact])
        await session.flush()
        conv = Conversation(organization_id=org.id, contact_id=contact.id, channel_id=channel.id)
        session.add(conv)
        await session.flush()
        ids = {"org": org.id, "ana": ana.id, "bob": bob.id, "conv": conv.id}
        for name, user_id, key, scope in (
            ("ana_k1", ana.id, "k1", f"user:{ana.id}"),
            ("key_k1", None, "k1", "key:7"),
            ("bob_k2", bob.id, "k2", f"user:{bob.id}"),
        ):
            message = Message(
                organization_id=org.id,
                conversation_id=conv.id,
                channel_id=channel.id,
                direction="outbound",
                sender_user_id=user_id,
                content=name,
                status="sent",
                idempotency_key=key,
                idempotency_scope=scope,
                idempotency_digest="0" * 64,
            )
            session.add(message)
            await session.flush()
            assert message.id is not None
            ids[name] = message.id
        await session.commit()
    return ids


async def _rows(url: str, columns: str) -> list[Any]:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            result = await conn.execute(text(f"SELECT id, {columns} FROM messages ORDER BY id"))
            return [tuple(row) for row in result]
    finally:
        await db.dispose()


def test_keys_are_kept_scoped_to_their_user_and_made_unique_again_going_down(
    empty_database: str,  # noqa: F811
) -> None:
    url = empty_database
    migrate.upgrade(url)

    async def seed() -> dict[str, int]:
        db = Database(url)
        try:
            return await _seed(db)
        finally:
            await db.dispose()

    ids = asyncio.run(seed())

    # Down: one key per organization again; every message stays, the first keeps it.
    migrate.downgrade(url, "0005")
    assert asyncio.run(_rows(url, "idempotency_key")) == [
        (ids["ana_k1"], "k1"),
        (ids["key_k1"], None),
        (ids["bob_k2"], "k2"),
    ]

    # Up: a user's key becomes theirs; a key sent with an API key names no key we know.
    migrate.upgrade(url)
    migrate.check(url)
    assert asyncio.run(_rows(url, "idempotency_key, idempotency_scope, idempotency_digest")) == [
        (ids["ana_k1"], "k1", f"user:{ids['ana']}", None),
        (ids["key_k1"], None, None, None),
        (ids["bob_k2"], "k2", f"user:{ids['bob']}", None),
    ]

    async def retry() -> tuple[Message, bool]:
        db = Database(url)
        try:
            return await post_reply(
                db,
                NullSink(),
                org_id=ids["org"],
                conversation_id=ids["conv"],
                user_id=ids["ana"],
                content="ana_k1",
                attachments=[],
                private=False,
                idempotency=Idempotency.of("k1", user_id=ids["ana"], api_key_id=None),
            )
        finally:
            await db.dispose()

    # A retry of a reply stored before the upgrade still answers with it.
    message, created = asyncio.run(retry())
    assert (message.id, created) == (ids["ana_k1"], False)

    if url.startswith("sqlite"):
        # The rebuilt table still never hands out a deleted message's id again.
        async def schema() -> str:
            db = Database(url)
            try:
                async with db.engine.connect() as conn:
                    sql = "SELECT sql FROM sqlite_master WHERE name = 'messages'"
                    return str((await conn.execute(text(sql))).scalar())
            finally:
                await db.dispose()

        assert "AUTOINCREMENT" in asyncio.run(schema())
