"""A demo organization to click through: an owner and two agents, three sandbox channels,
thirty customers and forty conversations in every state, leads and canned responses."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import SecretStr
from sqlmodel import col, select

from connectors.settings import InstagramSettings, SmsSettings, WhatsAppSettings

from ..db import Database
from ..models import (
    CannedResponse,
    Channel,
    Contact,
    ContactIdentity,
    Conversation,
    Lead,
    Message,
    User,
    utcnow,
)
from ..security import hash_password
from ..services.accounts import create_organization
from ..services.channel_secrets import ChannelSecrets
from ..services.channels import create_channel
from .script import (
    CANNED,
    FAILED_CODE,
    FAILED_ERROR,
    FAILED_REPLY,
    LEADS,
    PEOPLE,
    THREADS,
    VIP,
    Line,
    country_of,
)

DEMO_OWNER = "owner@demo.example"
DEMO_AGENT = "agent@demo.example"
DEMO_AGENT_2 = "agent2@demo.example"
DEMO_USERS = [
    (DEMO_OWNER, "owner", "Olivia Owner"),
    (DEMO_AGENT, "agent", "Alex Agent"),
    (DEMO_AGENT_2, "agent", "Sam Rivera"),
]
KINDS = ("whatsapp", "instagram", "sms")
# Ten conversations' worth of statuses, repeated: every state shows in every view.
_STATUSES = ["open", "open", "pending", "open", "closed", "snoozed", "open", "pending",
             "closed", "open"]
# The conversation whose last reply the platform refused (a WhatsApp one).
_FAILED_AT = 3


async def seed_demo(db: Database, channel_secrets: ChannelSecrets) -> dict[str, Any]:
    async with db.session() as session:
        existing = (await session.exec(select(User).where(User.email == DEMO_OWNER))).first()
    if existing is not None:
        return await _reset_demo_logins(db, existing.organization_id)
    password = secrets.token_urlsafe(9)
    org = await create_organization(db, "Demo Company")
    assert org.id is not None
    # One hash for the three: hashing is slow on purpose, and they share the password.
    password_hash = await hash_password(password)
    users = [
        User(organization_id=org.id, email=email, role=role, name=name,
             password_hash=password_hash)
        for email, role, name in DEMO_USERS
    ]
    async with db.session() as session:
        session.add_all(users)
        await session.commit()
    channels = await _channels(db, channel_secrets, org.id)
    await _Seed(org.id, [u.id for u in users if u.id is not None], channels).write(db)
    return {
        "organization_id": org.id,
        "login": DEMO_OWNER,
        "agent_login": DEMO_AGENT,
        "other_agent_login": DEMO_AGENT_2,
        "password": password,
    }


async def _channels(
    db: Database, channel_secrets: ChannelSecrets, org_id: int
) -> dict[str, Channel]:
    # Demo credentials open no account: the built-in sandbox answers every send.
    whatsapp = WhatsAppSettings(
        phone_number_id=f"9{org_id:011d}",
        access_token=SecretStr("demo"),
        app_secret=SecretStr(secrets.token_hex(16)),
        verify_token=SecretStr(secrets.token_hex(8)),
        sandbox=True,
    )
    instagram = InstagramSettings(
        account_id=f"8{org_id:011d}",
        access_token=SecretStr("demo"),
        app_secret=SecretStr(secrets.token_hex(16)),
        verify_token=SecretStr(secrets.token_hex(8)),
        sandbox=True,
    )
    sms = SmsSettings(
        phone_number=f"+1555{org_id:07d}",
        account_sid="AC" + secrets.token_hex(16),
        auth_token=SecretStr(secrets.token_hex(16)),
        sandbox=True,
    )
    made = {}
    for kind, name, settings in (
        ("whatsapp", "WhatsApp (demo)", whatsapp),
        ("instagram", "Instagram (demo)", instagram),
        ("sms", "SMS (demo)", sms),
    ):
        made[kind] = await create_channel(
            db, channel_secrets, org_id, kind=kind, name=name, settings=settings
        )
    return made


def external_id(kind: str, org_id: int, index: int, phone: str) -> str:
    """How a platform names the customer: a WhatsApp id is the number without "+",
    Twilio sends the number itself, Instagram a scoped id of its own."""
    if kind == "whatsapp":
        return phone.lstrip("+")
    if kind == "sms":
        return phone
    return f"6{org_id:06d}{index:09d}"


@dataclass
class _Seed:
    org_id: int
    user_ids: list[int]
    channels: dict[str, Channel]
    now: datetime = field(default_factory=utcnow)
    # The same organization on every run: a demo that can be described step by step.
    rng: random.Random = field(default_factory=lambda: random.Random(14))

    async def write(self, db: Database) -> None:
        async with db.session() as session:
            contacts = [self._contact(i, *person) for i, person in enumerate(PEOPLE)]
            session.add_all(contacts)
            await session.flush()
            ids = [c.id for c in contacts if c.id is not None]
            plan = self._plan()
            session.add_all(self._identities(ids, plan))
            session.add_all(self._leads(ids, plan))
            session.add_all(
                CannedResponse(
                    organization_id=self.org_id,
                    short_code=code,
                    content=text,
                    created_by_id=self.user_ids[0],
                )
                for code, text in CANNED
            )
            conversations = [self._conversation(ids, who, kind, k) for k, (who, kind) in plan]
            session.add_all(conversations)
            await session.flush()
            for (k, (who, kind)), conv in zip(plan, conversations, strict=True):
                session.add_all(self._thread(conv, k, who, kind))
            await session.commit()

    def _contact(self, i: int, name: str, phone: str, email: str) -> Contact:
        tags = ["demo", "vip"] if name in VIP else ["demo"]
        is_lead = any(who == i and status != "converted" for who, status, _ in LEADS)
        return Contact(
            organization_id=self.org_id,
            name=name,
            phone=phone,
            email=email,
            status="lead" if is_lead else "customer",
            tags=tags,
            created_at=self.now - timedelta(days=30 - i % 20),
        )

    def _plan(self) -> list[tuple[int, tuple[int, str]]]:
        """(conversation number, (customer, channel kind)): one conversation each, and a
        second for ten of them, on another channel (one customer reaching us on two) or
        an older, closed one on the same."""
        pairs = [(i, KINDS[i % 3]) for i in range(len(PEOPLE))]
        pairs += [(j, KINDS[(j + (1 if j % 2 == 0 else 0)) % 3]) for j in range(10)]
        return list(enumerate(pairs))

    def _identities(
        self, ids: list[int], plan: list[tuple[int, tuple[int, str]]]
    ) -> list[ContactIdentity]:
        pairs = sorted({pair for _, pair in plan})
        return [
            ContactIdentity(
                organization_id=self.org_id,
                contact_id=ids[who],
                kind=kind,
                external_id=external_id(kind, self.org_id, who, PEOPLE[who][1]),
                profile_name=PEOPLE[who][0],
            )
            for who, kind in pairs
        ]

    def _leads(self, ids: list[int], plan: list[tuple[int, tuple[int, str]]]) -> list[Lead]:
        first_kind = {who: kind for _, (who, kind) in reversed(plan)}
        return [
            Lead(
                organization_id=self.org_id,
                contact_id=ids[who],
                name=PEOPLE[who][0],
                phone=PEOPLE[who][1],
                email=PEOPLE[who][2],
                status=status,
                source=first_kind[who],
                value=Decimal(value),
                converted_at=self.now - timedelta(days=2) if status == "converted" else None,
            )
            for who, status, value in LEADS
        ]

    def _status(self, k: int, who: int) -> str:
        if k >= len(PEOPLE) and who % 2 == 1:
            return "closed"  # the older conversation on the same channel
        return _STATUSES[k % len(_STATUSES)]

    def _conversation(self, ids: list[int], who: int, kind: str, k: int) -> Conversation:
        channel_id = self.channels[kind].id
        assert channel_id is not None
        owner, agent, other = self.user_ids
        assignees = [owner, agent, other, None, agent, None, other]
        status = self._status(k, who)
        return Conversation(
            organization_id=self.org_id,
            contact_id=ids[who],
            channel_id=channel_id,
            status=status,
            assignee_id=assignees[k % len(assignees)],
            snoozed_until=(
                self.now + timedelta(hours=self.rng.choice([2, 5, 20, 44]))
                if status == "snoozed"
                else None
            ),
        )

    def _thread(self, conv: Conversation, k: int, who: int, kind: str) -> list[Message]:
        """The conversation's messages, back from its last activity; the conversation
        takes its unread count, preview and first response from them."""
        assert conv.id is not None
        thread = THREADS[(k * 5) % len(THREADS)]
        name, phone, email = PEOPLE[who]
        fill = {
            "first": name.split()[0],
            "order": str(10400 + k * 37),
            "country": country_of(phone),
            "email": email,
        }
        lines = list(thread.lines)
        if k == _FAILED_AT:
            lines.append(Line("failed", FAILED_REPLY))
        closed = conv.status == "closed"
        ago = timedelta(minutes=self.rng.uniform(26 * 60, 4 * 24 * 60) if closed
                        else self.rng.uniform(3, 30 * 60))
        at = self.now - ago
        times = []
        for _ in lines:
            times.append(at)
            at -= timedelta(minutes=self.rng.uniform(2, 50))
        times.reverse()
        agent = conv.assignee_id or self.user_ids[0]
        messages = []
        for i, (line, when) in enumerate(zip(lines, times, strict=True)):
            later_inbound = any(later.who == "in" for later in lines[i + 1 :])
            messages.append(
                self._message(conv, kind, line, line.text.format(**fill), when, i, agent,
                              later_inbound)
            )
        self._summarize(conv, lines, messages)
        conv.labels = [thread.label, "vip"] if name in VIP else [thread.label]
        return messages

    def _message(self, conv: Conversation, kind: str, line: Line, text: str, at: datetime,
                 i: int, agent: int, answered: bool) -> Message:
        assert conv.id is not None
        message = Message(
            organization_id=self.org_id,
            conversation_id=conv.id,
            channel_id=conv.channel_id,
            direction="inbound" if line.who == "in" else "outbound",
            content=text,
            status="received",
            platform_timestamp=at,
            ordered_at=at,
            created_at=at,
            updated_at=at,
        )
        if line.who == "in":
            message.sender_contact_id = conv.contact_id
            message.external_id = f"demo-{self.org_id}-{conv.id}-{i}"
            return message
        message.sender_user_id = agent
        if line.who == "note":
            message.private, message.status = True, "sent"
            return message
        message.attempts = 1
        if line.who == "failed":
            # Refused by the platform: it never got an id there.
            message.status, message.error_code, message.error = "failed", FAILED_CODE, FAILED_ERROR
            return message
        message.external_id = f"demo-out-{self.org_id}-{conv.id}-{i}"
        if answered:
            message.status = "delivered" if kind == "sms" else "read"
        else:
            message.status = self.rng.choice(
                ["delivered", "sent"] if kind == "sms" else ["delivered", "read", "sent"]
            )
        return message

    def _summarize(self, conv: Conversation, lines: list[Line], messages: list[Message]) -> None:
        shown = [m for m in messages if not m.private]
        last = shown[-1]
        conv.last_message_at = last.created_at
        conv.last_message_preview = (last.content or "")[:280]
        conv.created_at = messages[0].created_at
        conv.updated_at = last.created_at
        first_in = next(m for m in messages if m.direction == "inbound")
        conv.last_inbound_at = max(m.created_at for m in messages if m.direction == "inbound")
        reply = next(
            (m for m in shown if m.direction == "outbound" and m.status != "failed"), None
        )
        if reply is not None:
            conv.first_response_at = reply.created_at
            conv.first_response_seconds = (reply.created_at - first_in.created_at).total_seconds()
        unread = 0
        for line in reversed(lines):
            if line.who == "in":
                unread += 1
            elif line.who != "note":
                break
        # Some of the open ones an agent has read already.
        if conv.status == "closed" or (conv.assignee_id and self.rng.random() < 0.4):
            unread = 0
        conv.unread_count = unread


async def _reset_demo_logins(db: Database, organization_id: int) -> dict[str, Any]:
    """Give the existing demo users a new password: it was printed once, and is likely
    lost by the time someone runs the demo again."""
    password = secrets.token_urlsafe(9)
    password_hash = await hash_password(password)
    emails = [email for email, _, _ in DEMO_USERS]
    async with db.session(write=True) as session:
        users = list(
            await session.exec(
                select(User).where(
                    User.organization_id == organization_id, col(User.email).in_(emails)
                )
            )
        )
        for user in users:
            user.password_hash = password_hash
            user.updated_at = utcnow()
            session.add(user)
        await session.commit()
    result: dict[str, Any] = {"organization_id": organization_id, "login": DEMO_OWNER}
    found = {user.email for user in users}
    for key, email in (("agent_login", DEMO_AGENT), ("other_agent_login", DEMO_AGENT_2)):
        if email in found:
            result[key] = email
    result["password"] = password
    result["note"] = "the demo organization exists already; its users' passwords were reset"
    return result
