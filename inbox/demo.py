"""A demo organization to click through: users, channels, contacts, leads, conversations."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import SecretStr
from sqlmodel import col, select

from connectors.settings import SmsSettings, WhatsAppSettings

from .db import Database
from .models import Contact, ContactIdentity, Conversation, Lead, Message, User, utcnow
from .security import hash_password
from .services.accounts import create_organization, create_user
from .services.channel_secrets import ChannelSecrets
from .services.channels import create_channel

DEMO_OWNER = "owner@demo.example"
DEMO_AGENT = "agent@demo.example"

_PEOPLE = [
    ("Ana Souza", "+5511987654321", "whatsapp", "Hi! Is the premium plan available in Brazil?"),
    ("Ben Carter", "+14155550132", "sms", "Can I move my appointment to Friday?"),
    ("Chloé Martin", "+33612345678", "whatsapp", "Bonjour, my order hasn't arrived yet."),
]


async def seed_demo(db: Database, channel_secrets: ChannelSecrets) -> dict[str, Any]:
    async with db.session() as session:
        existing = (await session.exec(select(User).where(User.email == DEMO_OWNER))).first()
    if existing is not None:
        return await _reset_demo_logins(db, existing.organization_id)
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
    whatsapp = WhatsAppSettings(
        phone_number_id=f"9{org.id:011d}",
        access_token=SecretStr("demo"),
        app_secret=SecretStr(secrets.token_hex(16)),
        verify_token=SecretStr(secrets.token_hex(8)),
        # Demo credentials open no account: the built-in sandbox answers.
        sandbox=True,
    )
    sms = SmsSettings(
        phone_number=f"+1555{org.id:07d}",
        account_sid="AC" + secrets.token_hex(16),
        auth_token=SecretStr(secrets.token_hex(16)),
        sandbox=True,
    )
    channels = {
        "whatsapp": await create_channel(
            db, channel_secrets, org.id, kind="whatsapp", name="WhatsApp (demo)", settings=whatsapp
        ),
        "sms": await create_channel(
            db, channel_secrets, org.id, kind="sms", name="SMS (demo)", settings=sms
        ),
    }
    async with db.session() as session:
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


async def _reset_demo_logins(db: Database, organization_id: int) -> dict[str, Any]:
    """Give the existing demo users a new password: it was printed once, and is likely
    lost by the time someone runs the demo again."""
    password = secrets.token_urlsafe(9)
    password_hash = await hash_password(password)
    async with db.session(write=True) as session:
        users = list(
            await session.exec(
                select(User).where(
                    User.organization_id == organization_id,
                    col(User.email).in_([DEMO_OWNER, DEMO_AGENT]),
                )
            )
        )
        for user in users:
            user.password_hash = password_hash
            user.updated_at = utcnow()
            session.add(user)
        await session.commit()
    result: dict[str, Any] = {"organization_id": organization_id, "login": DEMO_OWNER}
    if any(user.email == DEMO_AGENT for user in users):
        result["agent_login"] = DEMO_AGENT
    result["password"] = password
    result["note"] = "the demo organization exists already; its users' passwords were reset"
    return result
