"""Reading a WhatsApp delivery into events, one part at a time.

A delivery is ``{"object": "whatsapp_business_account", "entry": [{"id": <WhatsApp
Business Account id>, "changes": [{"field": ..., "value": {...}}]}]}``. The
``messages`` field carries messages and statuses, ``smb_message_echoes`` what the
business sent from the WhatsApp Business app, ``calls`` the customer's calls
(``whatsapp_notices``), account, quality and template notices the channel's health
(``whatsapp_account``); every other field becomes an Unhandled event. A part that
is not what the platform documents becomes an Unreadable event and costs only itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import PayloadError
from .meta import isolated, lenient_str
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
    Unreadable,
)
from .whatsapp_account import FIELDS as ACCOUNT_FIELDS
from .whatsapp_account import account_notice
from .whatsapp_content import error_text, message_content
from .whatsapp_notices import call, system

PLATFORM = "whatsapp"
OBJECT = "whatsapp_business_account"
_STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


@dataclass(frozen=True)
class _Party:
    """One entry of a delivery's ``contacts``: who a message is from."""

    wa_id: str | None
    name: str | None
    # The business-scoped user id, given beside the wa_id, or alone when the user
    # hides their number behind a username.
    user_id: str | None = None


Contacts = list[_Party]
_NOBODY = _Party(None, None)


def parse_delivery(body: dict[str, Any]) -> list[InboundEvent]:
    if body.get("object", OBJECT) != OBJECT:
        name = body.get("object")
        return [
            Unhandled(
                PLATFORM, None, f"object:{name}" if isinstance(name, str) else "object", "object"
            )
        ]
    events: list[InboundEvent] = []
    for where, raw_entry in _items(body, "entry", "", events):
        events.extend(isolated(PLATFORM, None, where, _entry, raw_entry, where))
    return events


def phone_number_ids(body: dict[str, Any]) -> list[str]:
    """Every ``metadata.phone_number_id`` the delivery names, in order; never raises."""
    keys: list[str] = []
    for _, value in _values(body):
        metadata = value.get("metadata")
        key = lenient_str(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
        if key and key not in keys:
            keys.append(key)
    return keys


def account_ids(body: dict[str, Any]) -> list[str]:
    """Every ``entry[].id`` (WhatsApp Business Account id), in order; never raises."""
    entries = body.get("entry") if body.get("object", OBJECT) == OBJECT else None
    keys: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        key = lenient_str(entry.get("id")) if isinstance(entry, dict) else None
        if key and key not in keys:
            keys.append(key)
    return keys


def _values(body: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """(entry id, change value) of every readable change."""
    if body.get("object", OBJECT) != OBJECT or not isinstance(body.get("entry"), list):
        return []
    found: list[tuple[str | None, dict[str, Any]]] = []
    for entry in body["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                found.append((lenient_str(entry.get("id")), value))
    return found


def _items(
    parent: dict[str, Any],
    key: str,
    where: str,
    events: list[InboundEvent],
    channel_key: str | None = None,
) -> list[tuple[str, Any]]:
    """(where, item) of the array ``parent[key]``; an Unreadable when it is no array."""
    path = f"{where}.{key}" if where else key
    try:
        items = as_list(parent.get(key), path)
    except PayloadError as exc:
        events.append(Unreadable(PLATFORM, channel_key, exc.where or path, exc.message))
        return []
    return [(f"{path}[{k}]", item) for k, item in enumerate(items)]


def _entry(raw: Any, where: str) -> list[InboundEvent]:
    entry = as_object(raw, where)
    account_id = lenient_str(entry.get("id"))
    events: list[InboundEvent] = []
    for change_where, raw_change in _items(entry, "changes", where, events):
        events.extend(
            isolated(PLATFORM, None, change_where, _change, raw_change, change_where, account_id)
        )
    return events


def _change(raw: Any, where: str, account_id: str | None) -> list[InboundEvent]:
    change = as_object(raw, where)
    field = opt_str(change.get("field"), f"{where}.field") or "messages"
    value_where = f"{where}.value"
    value = opt_object(change.get("value"), value_where) or {}
    metadata = opt_object(value.get("metadata"), f"{value_where}.metadata") or {}
    channel_key = (
        opt_str(metadata.get("phone_number_id"), f"{value_where}.metadata.phone_number_id") or None
    )
    if field == "messages":
        own = opt_str(
            metadata.get("display_phone_number"), f"{value_where}.metadata.display_phone_number"
        )
        return _messages(value, value_where, channel_key, account_id, _digits(own))
    if field == "smb_message_echoes":
        return _echoes(value, value_where, channel_key)
    if field == "calls":
        return _calls(value, value_where, channel_key)
    if field in ACCOUNT_FIELDS:
        return [account_notice(field, value, channel_key, account_id, value_where)]
    # Account, template, quality, call and sync notifications: acknowledged, kept whole.
    return [Unhandled(PLATFORM, channel_key, field[:64], where, value, account_id)]


def _digits(number: str | None) -> str | None:
    return "".join(c for c in number if c.isdigit()) or None if number else None


def _messages(
    value: dict[str, Any],
    where: str,
    channel_key: str | None,
    account_id: str | None,
    own_number: str | None,
) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    contacts: Contacts = []
    for contact_where, raw_contact in _items(value, "contacts", where, events, channel_key):
        events.extend(
            isolated(
                PLATFORM, channel_key, contact_where, _contact, raw_contact, contact_where, contacts
            )
        )
    for message_where, raw_message in _items(value, "messages", where, events, channel_key):
        events.extend(
            isolated(
                PLATFORM,
                channel_key,
                message_where,
                _message,
                raw_message,
                channel_key,
                contacts,
                message_where,
                own_number,
            )
        )
    for status_where, raw_status in _items(value, "statuses", where, events, channel_key):
        events.extend(
            isolated(
                PLATFORM, channel_key, status_where, _status, raw_status, channel_key, status_where
            )
        )
    if "errors" in value:
        # Errors about the delivery itself (e.g. a message too large to deliver).
        events.append(
            Unhandled(
                PLATFORM,
                channel_key,
                "messages.errors",
                f"{where}.errors",
                {"errors": value["errors"]},
                account_id,
            )
        )
    return events


def _calls(value: dict[str, Any], where: str, channel_key: str | None) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    contacts: Contacts = []
    for contact_where, raw_contact in _items(value, "contacts", where, events, channel_key):
        events.extend(
            isolated(
                PLATFORM, channel_key, contact_where, _contact, raw_contact, contact_where, contacts
            )
        )

    def contact_of(number: str | None) -> tuple[str | None, str | None]:
        party = _contact_for(number, contacts)
        return party.wa_id, party.name

    def read_call(raw: Any, at: str) -> InboundEvent:
        return call(as_object(raw, at), channel_key, contact_of, at)

    for call_where, raw_call in _items(value, "calls", where, events, channel_key):
        events.extend(isolated(PLATFORM, channel_key, call_where, read_call, raw_call, call_where))
    return events


def _contact(raw: Any, where: str, contacts: Contacts) -> list[InboundEvent]:
    contact = as_object(raw, where)
    profile = opt_object(contact.get("profile"), f"{where}.profile")
    name = opt_str(profile.get("name"), f"{where}.profile.name") if profile else None
    contacts.append(
        _Party(
            opt_str(contact.get("wa_id"), f"{where}.wa_id") or None,
            name or None,
            opt_str(contact.get("user_id"), f"{where}.user_id") or None,
        )
    )
    return []


def _message(
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
    if own_number and _digits(sender_phone_field) == own_number:
        # The channel's own number is the business, never a customer to make a contact of.
        return Unhandled(PLATFORM, channel_key, "messages.from_business", where, message)

    # The contact entry names the sender; its wa_id is the identity, which the
    # documentation warns may differ from the phone number in ``from``. A user who
    # hides their number is named by their user id alone.
    party = _contact_for(sender_phone_field, contacts)
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


def _contact_for(sender: str | None, contacts: Contacts) -> _Party:
    for party in contacts:
        if sender is not None and party.wa_id == sender:
            return party
    if len(contacts) == 1:
        return contacts[0]
    return _NOBODY


def _status(raw: Any, channel_key: str | None, where: str) -> InboundEvent:
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


def _echoes(value: dict[str, Any], where: str, channel_key: str | None) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    for echo_where, raw_echo in _items(value, "message_echoes", where, events, channel_key):
        events.extend(
            isolated(PLATFORM, channel_key, echo_where, _echo, raw_echo, channel_key, echo_where)
        )
    return events


def _echo(raw: Any, channel_key: str | None, where: str) -> InboundEvent:
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
