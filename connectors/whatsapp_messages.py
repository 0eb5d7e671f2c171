"""One part of a WhatsApp delivery read into an event: a message, a status, an echo.

``whatsapp_inbound`` walks the delivery and hands each part here; a part that is not
what the platform documents raises PayloadError, which costs only that part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import PayloadError
from .payload import as_list, as_object, as_str, opt_object, opt_str, type_name, unix_time
from .phones import to_e164
from .types import (
    Activity,
    Deletion,
    DeliveryStatus,
    Echo,
    InboundEvent,
    InboundMessage,
    MessageEdit,
    Reaction,
    StatusUpdate,
    Unhandled,
)
from .whatsapp_content import error_text, message_content
from .whatsapp_notices import system

PLATFORM = "whatsapp"

_STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


@dataclass(frozen=True)
class Party:
    """One entry of a delivery's ``contacts``: who a message is from."""

    wa_id: str | None
    name: str | None
    # The business-scoped user id, given beside the wa_id, or alone when the user
    # hides their number behind a username.
    user_id: str | None = None


Contacts = list[Party]
_NOBODY = Party(None, None)


def digits(number: str | None) -> str | None:
    """The digits of a phone number as written, to compare numbers however spelled."""
    return "".join(c for c in number if c.isdigit()) or None if number else None


def read_contact(raw: Any, where: str, contacts: Contacts) -> list[InboundEvent]:
    contact = as_object(raw, where)
    profile = opt_object(contact.get("profile"), f"{where}.profile")
    name = opt_str(profile.get("name"), f"{where}.profile.name") if profile else None
    contacts.append(
        Party(
            opt_str(contact.get("wa_id"), f"{where}.wa_id") or None,
            name or None,
            opt_str(contact.get("user_id"), f"{where}.user_id") or None,
        )
    )
    return []


def read_message(
    message_raw: Any,
    channel_key: str | None,
    contacts: Contacts,
    where: str,
    own_number: str | None = None,
) -> InboundEvent | list[InboundEvent]:
    message = as_object(message_raw, where)
    external_id = as_str(message.get("id"), f"{where}.id")
    timestamp = unix_time(message.get("timestamp"), f"{where}.timestamp")
    kind = type_name(opt_str(message.get("type"), f"{where}.type"))
    sender_phone_field = opt_str(message.get("from"), f"{where}.from")

    if kind == "system":
        # No contacts array comes with it: the sender is ``from`` alone, never the
        # contact of another message batched beside it.
        return system(message, channel_key, sender_phone_field, external_id, timestamp, where)
    if own_number and digits(sender_phone_field) == own_number:
        # The channel's own number is the business, never a customer to make a contact of.
        return Unhandled(PLATFORM, channel_key, "messages.from_business", where, message)

    # The contact entry names the sender; its wa_id is the identity, which the
    # documentation warns may differ from the phone number in ``from``. A user who
    # hides their number is named by their user id alone.
    party = contact_for(sender_phone_field, contacts)
    wa_id, name = party.wa_id, party.name
    user_id = party.user_id or opt_str(message.get("from_user_id"), f"{where}.from_user_id") or None
    sender_id = wa_id or sender_phone_field or user_id
    if not sender_id:
        raise PayloadError("message has neither from nor a contact wa_id or user_id", where)
    if user_id == sender_id:
        user_id = None

    if kind == "reaction":
        reaction = opt_object(message.get("reaction"), f"{where}.reaction") or {}
        return Reaction(
            platform=PLATFORM,
            channel_key=channel_key,
            sender_id=sender_id,
            target_id=as_str(reaction.get("message_id"), f"{where}.reaction.message_id"),
            # An empty emoji is how WhatsApp says the reaction was removed.
            emoji=opt_str(reaction.get("emoji"), f"{where}.reaction.emoji") or None,
            timestamp=timestamp,
            external_id=external_id,
            sender_name=name,
        )
    if kind == "revoke":
        revoke = opt_object(message.get("revoke"), f"{where}.revoke") or {}
        target = as_str(revoke.get("original_message_id"), f"{where}.revoke.original_message_id")
        return Deletion(PLATFORM, channel_key, sender_id, target, timestamp)
    if kind == "edit":
        return _edit(message, channel_key, sender_id, external_id, timestamp, where)
    if kind == "request_welcome":
        # The customer opened the chat for the first time: nothing to answer yet.
        return Activity(
            platform=PLATFORM,
            channel_key=channel_key,
            sender_id=sender_id,
            kind="chat.opened",
            summary="Customer opened the chat",
            timestamp=timestamp,
            external_id=external_id,
            sender_name=name,
            sender_phone=to_e164(sender_phone_field) or to_e164(wa_id),
        )

    content, attachments, raw = message_content(kind, message, where)
    context = opt_object(message.get("context"), f"{where}.context") or {}
    reply_to = opt_str(context.get("id"), f"{where}.context.id") or None
    for flag in ("forwarded", "frequently_forwarded"):
        if context.get(flag) is True:
            raw[flag] = True
    if isinstance(context.get("referred_product"), dict):
        raw["referred_product"] = context["referred_product"]
    referral = opt_object(message.get("referral"), f"{where}.referral")
    if referral:
        raw["referral"] = referral
        if not content:
            headline = opt_str(referral.get("headline"), f"{where}.referral.headline") or opt_str(
                referral.get("source_url"), f"{where}.referral.source_url"
            )
            content = f"via ad: {headline}" if headline else "via ad"
    return InboundMessage(
        platform=PLATFORM,
        channel_key=channel_key,
        sender_id=sender_id,
        external_id=external_id,
        timestamp=timestamp,
        content=content,
        content_type=kind,
        sender_name=name,
        sender_phone=to_e164(sender_phone_field) or to_e164(wa_id),
        attachments=attachments,
        raw=raw,
        reply_to=reply_to,
        sender_user_id=user_id,
    )


def _edit(
    message: dict[str, Any],
    channel_key: str | None,
    sender_id: str,
    external_id: str,
    timestamp: datetime,
    where: str,
    by_business: bool = False,
) -> InboundEvent:
    edit_where = f"{where}.edit"
    edit = opt_object(message.get("edit"), edit_where) or {}
    target = as_str(edit.get("original_message_id"), f"{edit_where}.original_message_id")
    inner_where = f"{edit_where}.message"
    inner = opt_object(edit.get("message"), inner_where) or {}
    inner_kind = type_name(opt_str(inner.get("type"), f"{inner_where}.type") or "text")
    content, _, _ = message_content(inner_kind, inner, inner_where)
    return MessageEdit(
        PLATFORM, channel_key, sender_id, target, content, timestamp, external_id, by_business
    )


def contact_for(sender: str | None, contacts: Contacts) -> Party:
    for party in contacts:
        if sender is not None and party.wa_id == sender:
            return party
    if len(contacts) == 1:
        return contacts[0]
    return _NOBODY


def read_status(raw: Any, channel_key: str | None, where: str) -> InboundEvent:
    status = as_object(raw, where)
    platform_status = as_str(status.get("status"), f"{where}.status")
    normalized = _STATUSES.get(platform_status)
    if normalized is None:
        # e.g. "deleted", "warning", "played": not a delivery step of ours.
        return Unhandled(
            PLATFORM, channel_key, f"statuses.{type_name(platform_status)}", where, status
        )
    errors = as_list(status.get("errors"), f"{where}.errors")
    error_code = None
    if errors:
        first = as_object(errors[0], f"{where}.errors[0]")
        error_code = opt_str(first.get("code"), f"{where}.errors[0].code")
    return StatusUpdate(
        platform=PLATFORM,
        channel_key=channel_key,
        external_id=as_str(status.get("id"), f"{where}.id"),
        status=normalized,
        timestamp=unix_time(status.get("timestamp"), f"{where}.timestamp"),
        recipient_id=opt_str(status.get("recipient_id"), f"{where}.recipient_id"),
        error_code=error_code,
        error_message=error_text(errors, f"{where}.errors"),
        platform_status=platform_status,
    )


def read_echo(raw: Any, channel_key: str | None, where: str) -> InboundEvent:
    """What the business sent from the WhatsApp Business app: ``from`` is our number,
    ``to`` the customer, and the content objects are those of a message."""
    echo = as_object(raw, where)
    kind = type_name(opt_str(echo.get("type"), f"{where}.type"))
    customer = as_str(echo.get("to"), f"{where}.to")
    external_id = as_str(echo.get("id"), f"{where}.id")
    timestamp = unix_time(echo.get("timestamp"), f"{where}.timestamp")
    if kind == "edit":
        return _edit(echo, channel_key, customer, external_id, timestamp, where, by_business=True)
    if kind == "revoke":
        revoke = opt_object(echo.get("revoke"), f"{where}.revoke") or {}
        target = as_str(revoke.get("original_message_id"), f"{where}.revoke.original_message_id")
        return Deletion(PLATFORM, channel_key, customer, target, timestamp, by_business=True)
    if kind == "reaction":
        reaction = opt_object(echo.get("reaction"), f"{where}.reaction") or {}
        target = as_str(reaction.get("message_id"), f"{where}.reaction.message_id")
        emoji = opt_str(reaction.get("emoji"), f"{where}.reaction.emoji") or None
        if emoji is None:
            return Reaction(
                PLATFORM,
                channel_key,
                customer,
                target,
                None,
                timestamp,
                external_id,
                by_business=True,
            )
        return Echo(
            platform=PLATFORM,
            channel_key=channel_key,
            external_id=external_id,
            recipient_id=customer,
            timestamp=timestamp,
            content=emoji,
            attachments=[{"type": "reaction", "target_id": target, "emoji": emoji}],
            content_type="reaction",
        )
    content, attachments, raw = message_content(kind, echo, where)
    if raw:
        attachments = [*attachments, {"type": kind, "data": raw}]
    return Echo(
        platform=PLATFORM,
        channel_key=channel_key,
        external_id=external_id,
        recipient_id=customer,
        timestamp=timestamp,
        content=content,
        attachments=attachments,
        content_type=kind,
    )
