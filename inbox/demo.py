"""A demo organization to click through: users, channels, contacts, leads, conversations."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import select

from .db import Database
from .models import Channel, Contact, ContactIdentity, Conversation, Lead, Message, User, utcnow
from .services.accounts import create_organization, create_user

DEMO_OWNER = "owner@demo.example"
DEMO_AGENT = "agent@demo.example"

_PEOPLE = [
    ("Ana Souza", "+5511987654321", "whatsapp", "Hi! Is the premium plan available in Brazil?"),
    ("Ben Carter", "+14155550132", "sms", "Can I move my appointment to Friday?"),
    ("Chloé Martin", "+33612345678", "whatsapp", "Bonjour, my order hasn't arrived yet."),
]


async def seed_demo(db: Database) -> dict[str, Any]:
    async with db.session() as session:
        existing = (await session.exec(select(User).where(User.email == DEMO_OWNER))).first()
    if existing is not None:
        return {
            "organization_id": existing.organization_id,
            "login": DEMO_OWNER,
            "note": "the demo organization exists already; reset its password with the CLI",
        }
    password = secrets.token_urlsafe(9)
    org = await create_organization(db, "Demo Company")
    assert org.id is not None
    owner = await create_user(
        db, org.id, email=DEMO_OWNER, password=password, role="owner", name="Olivia Owner"
    )
    await create_user(
        db, org.id, email=DEMO_AGENT, password=password, role="agent", name="Alex Agent"
    )
    now = utcnow()
    async with db.session() as session:
        channels = {
            "whatsapp": Channel(
                organization_id=org.id,
                kind="whatsapp",
                name="WhatsApp (demo)",
                routing_key=f"9{org.id:011d}",
                settings={
                    "phone_number_id": f"9{org.id:011d}",
                    "access_token": "demo",
                    "app_secret": secrets.token_hex(16),
                    "verify_token": secrets.token_hex(8),
                    "previous_app_secrets": [],
                    # Demo credentials open no account: the built-in sandbox answers.
                    "sandbox": True,
                },
            ),
            "sms": Channel(
                organization_id=org.id,
                kind="sms",
                name="SMS (demo)",
                routing_key=f"+1555{org.id:07d}",
                settings={
                    "phone_number": f"+1555{org.id:07d}",
                    "account_sid": "AC" + secrets.token_hex(16),
                    "auth_token": secrets.token_hex(16),
                    "previous_auth_tokens": [],
                    "sandbox": True,
                },
            ),
        }
        session.add_all(channels.values())
        await session.flush()
        for i, (name, phone, kind, text) in enumerate(_PEOPLE):
            at = now - timedelta(minutes=15 * (len(_PEOPLE) - i))
            contact = Contact(
                organization_id=org.id, name=name, phone=phone, status="lead", tags=["demo"]
            )
            session.add(contact)
            await session.flush()
            assert contact.id is not None
            session.add(
                ContactIdentity(
                    organization_id=org.id,
                    contact_id=contact.id,
                    kind=kind,
                    external_id=phone.lstrip("+"),
                )
            )
            session.add(
                Lead(
                    organization_id=org.id,
                    contact_id=contact.id,
                    name=name,
                    phone=phone,
                    source=kind,
                    value=Decimal(100 * (i + 1)),
                )
            )
            channel = channels[kind]
            assert channel.id is not None
            conv = Conversation(
                organization_id=org.id,
                contact_id=contact.id,
                channel_id=channel.id,
                unread_count=1,
                last_message_at=at,
                last_message_preview=text[:280],
                assignee_id=owner.id if i == 0 else None,
            )
            session.add(conv)
            await session.flush()
            assert conv.id is not None
            session.add(
                Message(
                    organization_id=org.id,
                    conversation_id=conv.id,
                    channel_id=channel.id,
                    direction="inbound",
                    sender_contact_id=contact.id,
                    content=text,
                    status="received",
                    external_id=f"demo-{org.id}-{i}",
                    platform_timestamp=at,
                    created_at=at,
                )
            )
        await session.commit()
    return {
        "organization_id": org.id,
        "login": DEMO_OWNER,
        "agent_login": DEMO_AGENT,
        "password": password,
    }
