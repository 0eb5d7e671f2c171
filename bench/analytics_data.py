"""The analytics bench's dataset: two organizations' 30 days of conversations,
written straight into the tables in batches, the rollups then rebuilt from them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import insert

from inbox.db import Database
from inbox.models import Channel, Contact, Conversation, Lead, Message, table_of
from inbox.services import accounts

DAYS = 30
CHUNK = 5_000


async def make_org(db: Database, name: str, agents: int) -> tuple[int, list[int]]:
    """An organization with an owner and ``agents`` agents: its id and its users'."""
    org = await accounts.create_organization(db, name)
    assert org.id is not None
    users: list[int] = []
    for n in range(agents + 1):
        user = await accounts.create_user(
            db,
            org.id,
            email=f"{'owner' if n == 0 else 'agent'}{n}@{name.lower()}.example",
            password="bench-password",
            role="owner" if n == 0 else "agent",
            name=f"Agent {n}",
        )
        assert user.id is not None
        users.append(user.id)
    return org.id, users


async def populate(
    db: Database, org_id: int, users: list[int], conversations: int, start: datetime
) -> None:
    """``conversations`` conversations of ten messages each, spread over DAYS days."""
    rng = random.Random(org_id)
    agents = users[1:]
    async with db.session() as session:
        channels = [
            Channel(organization_id=org_id, kind=kind, name=f"{kind} {n}")
            for n, kind in enumerate(("whatsapp", "sms", "instagram", "generic"))
        ]
        session.add_all(channels)
        await session.commit()
        channel_ids = [c.id for c in channels]
    span = DAYS * 86400 - 3600
    for first in range(0, conversations, CHUNK // 10):
        count = min(CHUNK // 10, conversations - first)
        opened = [start + timedelta(seconds=rng.randrange(span)) for _ in range(count)]
        async with db.engine.begin() as conn:
            contact_rows = [
                {
                    "organization_id": org_id,
                    "name": f"c{first + i}",
                    "tags": [],
                    "custom_fields": {},
                    "status": "lead",
                    "created_at": at,
                    "updated_at": at,
                }
                for i, at in enumerate(opened)
            ]
            contact_ids = (
                (
                    await conn.execute(
                        insert(table_of(Contact)).returning(table_of(Contact).c.id), contact_rows
                    )
                )
                .scalars()
                .all()
            )
            conv_rows, plans = [], []
            for contact_id, at in zip(contact_ids, opened, strict=True):
                agent = rng.choice(agents)
                wait = rng.randrange(30, 7200)
                closed = (
                    at + timedelta(seconds=rng.randrange(3600, 86400))
                    if rng.random() < 0.6
                    else None
                )
                conv_rows.append(
                    {
                        "organization_id": org_id,
                        "contact_id": contact_id,
                        "channel_id": rng.choice(channel_ids),
                        "status": "closed" if closed else "open",
                        "assignee_id": agent,
                        "labels": [],
                        "unread_count": 0,
                        "first_response_at": at + timedelta(seconds=wait),
                        "first_response_seconds": float(wait),
                        "first_responder_id": agent,
                        "closed_at": closed,
                        "resolution_seconds": (closed - at).total_seconds() if closed else None,
                        "created_at": at,
                        "updated_at": closed or at,
                    }
                )
                plans.append((at, wait, agent))
            conv_ids = (
                await conn.execute(
                    insert(table_of(Conversation)).returning(
                        table_of(Conversation).c.id, table_of(Conversation).c.channel_id
                    ),
                    conv_rows,
                )
            ).all()
            messages = []
            for (conv_id, channel_id), contact_id, (at, wait, agent) in zip(
                conv_ids, contact_ids, plans, strict=True
            ):
                for i in range(10):
                    inbound = i in (0, 1, 3, 5, 7, 8)
                    when = at + timedelta(seconds=wait if i == 2 else i * 600)
                    messages.append(
                        {
                            "organization_id": org_id,
                            "conversation_id": conv_id,
                            "channel_id": channel_id,
                            "direction": "inbound" if inbound else "outbound",
                            "sender_contact_id": contact_id if inbound else None,
                            "sender_user_id": None if inbound else agent,
                            "private": i == 9,
                            "content": "hello there",
                            "content_type": "text",
                            "attachments": [],
                            "platform_data": {},
                            "status": "received" if inbound else "sent",
                            "attempts": 0,
                            "ordered_at": when,
                            "created_at": when,
                            "updated_at": when,
                        }
                    )
            await conn.execute(insert(table_of(Message)), messages)
            leads = [
                {
                    "organization_id": org_id,
                    "contact_id": cid,
                    "name": "lead",
                    "status": "converted" if n % 2 else "new",
                    "created_at": at,
                    "updated_at": at,
                    "converted_at": at + timedelta(hours=2) if n % 2 else None,
                }
                for n, (cid, at) in enumerate(zip(contact_ids, opened, strict=True))
                if n % 5 == 0
            ]
            await conn.execute(insert(table_of(Lead)), leads)
