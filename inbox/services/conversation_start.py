"""An agent writing first: the contact's open conversation on a channel (or a new one)
and its first message, queued for the delivery worker like any reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from connectors.phones import ImpossibleNumber, NotAPhoneNumber, parse_e164

from ..db import Database
from ..errors import NotFound, field_error
from ..events import EventType
from ..models import Channel, Contact, ContactIdentity, Conversation, Message
from ..views import contact_data, conversation_data
from .outbound import Idempotency, replayed, request_digest, store_reply
from .outbox import EventSink, UnitOfWork, unit_of_work

# Platforms whose people are reached by phone number; the others by their platform id.
_BY_PHONE = frozenset({"whatsapp", "sms"})


@dataclass(frozen=True)
class Recipient:
    """Who the first message goes to: a contact of the organization, or a number or
    platform id (``to``) found or made a contact of."""

    contact_id: int | None = None
    to: str | None = None


@dataclass(frozen=True)
class Started:
    conversation_id: int
    message: Message
    created: bool


def _identity_of(kind: str, to: str) -> tuple[str, str | None]:
    """(platform id, E.164 phone) for ``to`` on a channel of ``kind``; 422 for a phone
    number that is not one."""
    if kind not in _BY_PHONE:
        return to, None
    text = to.strip()
    try:
        phone = parse_e164(text if text.startswith("+") else f"+{text}")
    except (NotAPhoneNumber, ImpossibleNumber):
        raise field_error(
            "to", "must be a phone number in international format, e.g. +15550123456"
        ) from None
    # A WhatsApp id is the number's digits; Twilio names people by E.164.
    return (phone[1:] if kind == "whatsapp" else phone), phone


async def _contact_for_to(tx: UnitOfWork, channel: Channel, to: str) -> Contact:
    """The contact behind ``to`` on the channel's platform: by its identity, else by the
    same phone number on another channel; a new contact (and identity) otherwise."""
    session, org_id = tx.session, channel.organization_id
    external_id, phone = _identity_of(channel.kind, to)
    identity = (
        await session.exec(
            select(ContactIdentity).where(
                col(ContactIdentity.organization_id) == org_id,
                col(ContactIdentity.kind) == channel.kind,
                col(ContactIdentity.external_id) == external_id,
            )
        )
    ).first()
    contact = None
    if identity is not None:
        contact = await session.get(Contact, identity.contact_id, with_for_update=True)
    if contact is None and phone is not None:
        contact = (
            await session.exec(
                select(Contact)
                .where(col(Contact.organization_id) == org_id, col(Contact.phone) == phone)
                .order_by(col(Contact.id))
                .limit(1)
                .with_for_update()
            )
        ).first()
    created = contact is None
    if contact is None:
        contact = Contact(organization_id=org_id, phone=phone)
        session.add(contact)
        await session.flush()
    assert contact.id is not None
    if identity is None:
        session.add(
            ContactIdentity(
                organization_id=org_id,
                contact_id=contact.id,
                kind=channel.kind,
                external_id=external_id,
            )
        )
        await session.flush()
    if created:
        tx.emit(EventType.CONTACT_CREATED, contact_data(contact))
    return contact


async def _open_conversation(tx: UnitOfWork, channel: Channel, contact: Contact) -> Conversation:
    """The contact's newest conversation on the channel that is not closed, or a new one.
    The contact's row is locked first, as the ingest core locks it: a customer's message
    arriving meanwhile finds this conversation rather than opening a second."""
    session = tx.session
    await session.get(Contact, contact.id, with_for_update=True, populate_existing=True)
    conv = (
        await session.exec(
            select(Conversation)
            .where(
                col(Conversation.channel_id) == channel.id,
                col(Conversation.contact_id) == contact.id,
                col(Conversation.status) != "closed",
            )
            .order_by(col(Conversation.id).desc())
            .limit(1)
            .with_for_update()
        )
    ).first()
    if conv is not None:
        return conv
    assert channel.id is not None and contact.id is not None
    # The platform's reply window is the customer's and the channel's, not one
    # conversation's: their last message in an earlier (closed) one still opens it.
    last_inbound_at = (
        await session.exec(
            select(func.max(col(Conversation.last_inbound_at))).where(
                col(Conversation.channel_id) == channel.id,
                col(Conversation.contact_id) == contact.id,
            )
        )
    ).first()
    conv = Conversation(
        organization_id=channel.organization_id,
        contact_id=contact.id,
        channel_id=channel.id,
        last_inbound_at=last_inbound_at,
    )
    session.add(conv)
    await session.flush()
    assert conv.id is not None
    tx.emit(
        EventType.CONVERSATION_CREATED,
        await conversation_data(session, conv.id, channel.organization_id),
    )
    return conv


async def _check_reachable(session: AsyncSession, channel: Channel, contact: Contact) -> None:
    """422 when the delivery worker would find no one to send to on the channel: no
    identity of the contact on its platform (nor, by phone, a number)."""
    if channel.kind == "generic" or (channel.kind in _BY_PHONE and contact.phone):
        return
    identity = (
        await session.exec(
            select(ContactIdentity.id)
            .where(
                col(ContactIdentity.contact_id) == contact.id,
                col(ContactIdentity.kind) == channel.kind,
            )
            .limit(1)
        )
    ).first()
    if identity is None:
        how = "identity or phone number" if channel.kind in _BY_PHONE else "identity"
        raise field_error(
            "contact_id",
            f"contact {contact.id} has no {channel.kind} {how} to send to on this channel; "
            "give `to` instead",
        )


async def _owned(session: AsyncSession, model: Any, id_: int, org_id: int, what: str) -> Any:
    row = await session.get(model, id_)
    if row is None or row.organization_id != org_id:
        raise NotFound(f"{what} {id_} not found")
    return row


def start_digest(channel_id: int, recipient: Recipient, message: dict[str, Any]) -> str:
    """What a start asked for: a retry with the same key must ask for the same."""
    request = {"start": channel_id, "contact_id": recipient.contact_id, "to": recipient.to}
    return request_digest(
        0,
        orjson.dumps(request, option=orjson.OPT_SORT_KEYS).decode(),
        message.get("attachments") or [],
        False,
        {"content": message.get("content") or "", "template": message.get("template")},
    )


async def start_conversation(
    db: Database,
    sink: EventSink,
    *,
    org_id: int,
    channel_id: int,
    recipient: Recipient,
    user_id: int | None,
    message: dict[str, Any],
    idempotency: Idempotency | None,
    attachments: list[dict[str, Any]] | None = None,
) -> Started:
    """Open (or reuse) the conversation and queue its message; a repeat of the same
    request under the same idempotency key answers the first message and does nothing.
    ``attachments``: the message's attachments as stored, when they differ from those
    asked for (uploads resolved); the request is what a retry is compared by."""
    digest = start_digest(channel_id, recipient, message)
    if attachments is not None:
        message = {**message, "attachments": attachments}
    if idempotency is not None:
        existing = await replayed(db, org_id, idempotency, digest)
        if existing is not None:
            return Started(existing.conversation_id, existing, False)
    for attempt in (1, 2):
        try:
            return await _start(
                db, sink, org_id, channel_id, recipient, user_id, message, idempotency, digest
            )
        except IntegrityError:
            if idempotency is not None:
                existing = await replayed(db, org_id, idempotency, digest)
                if existing is not None:
                    return Started(existing.conversation_id, existing, False)
            # The person's first message made their contact meanwhile: it is found now.
            if attempt == 2 or recipient.to is None:
                raise
    raise AssertionError("unreachable")


async def _start(
    db: Database,
    sink: EventSink,
    org_id: int,
    channel_id: int,
    recipient: Recipient,
    user_id: int | None,
    message: dict[str, Any],
    idempotency: Idempotency | None,
    digest: str,
) -> Started:
    async with unit_of_work(db, org_id, sink) as tx:
        channel = await _owned(tx.session, Channel, channel_id, org_id, "Channel")
        if not channel.is_active:
            raise field_error("channel_id", f"channel {channel_id} is deactivated")
        if recipient.contact_id is not None:
            contact = await _owned(tx.session, Contact, recipient.contact_id, org_id, "Contact")
            await _check_reachable(tx.session, channel, contact)
        else:
            assert recipient.to is not None
            contact = await _contact_for_to(tx, channel, recipient.to)
        conv = await _open_conversation(tx, channel, contact)
        assert conv.id is not None
        stored = await store_reply(
            tx,
            conv,
            user_id=user_id,
            content=message.get("content") or "",
            attachments=message.get("attachments") or [],
            private=False,
            template=message.get("template"),
            idempotency=idempotency,
            digest=digest,
        )
    return Started(conv.id, stored, True)
