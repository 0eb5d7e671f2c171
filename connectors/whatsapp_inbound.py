"""Walking a WhatsApp delivery, one part at a time (each read in ``whatsapp_messages``).

A delivery is ``{"object": "whatsapp_business_account", "entry": [{"id": <WhatsApp
Business Account id>, "changes": [{"field": ..., "value": {...}}]}]}``. The
``messages`` field carries messages and statuses, ``smb_message_echoes`` what the
business sent from the WhatsApp Business app, ``calls`` the customer's calls
(``whatsapp_notices``), account, quality and template notices the channel's health
(``whatsapp_account``); every other field becomes an Unhandled event. A part that
is not what the platform documents becomes an Unreadable event and costs only itself.
"""

from __future__ import annotations

from typing import Any

from .errors import PayloadError
from .meta import isolated, lenient_str
from .payload import as_list, as_object, opt_object, opt_str
from .types import InboundEvent, Unhandled, Unreadable
from .whatsapp_account import FIELDS as ACCOUNT_FIELDS
from .whatsapp_account import account_notice
from .whatsapp_messages import (
    PLATFORM,
    Contacts,
    contact_for,
    digits,
    read_contact,
    read_echo,
    read_message,
    read_status,
)
from .whatsapp_notices import call

__all__ = ["OBJECT", "PLATFORM", "account_ids", "parse_delivery", "phone_number_ids"]

OBJECT = "whatsapp_business_account"


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
        return _messages(value, value_where, channel_key, account_id, digits(own))
    if field == "smb_message_echoes":
        return _echoes(value, value_where, channel_key)
    if field == "calls":
        return _calls(value, value_where, channel_key)
    if field in ACCOUNT_FIELDS:
        return [account_notice(field, value, channel_key, account_id, value_where)]
    # Account, template, quality, call and sync notifications: acknowledged, kept whole.
    return [Unhandled(PLATFORM, channel_key, field[:64], where, value, account_id)]


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
                PLATFORM,
                channel_key,
                contact_where,
                read_contact,
                raw_contact,
                contact_where,
                contacts,
            )
        )
    for message_where, raw_message in _items(value, "messages", where, events, channel_key):
        events.extend(
            isolated(
                PLATFORM,
                channel_key,
                message_where,
                read_message,
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
                PLATFORM,
                channel_key,
                status_where,
                read_status,
                raw_status,
                channel_key,
                status_where,
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
                PLATFORM,
                channel_key,
                contact_where,
                read_contact,
                raw_contact,
                contact_where,
                contacts,
            )
        )

    def contact_of(number: str | None) -> tuple[str | None, str | None]:
        party = contact_for(number, contacts)
        return party.wa_id, party.name

    def read_call(raw: Any, at: str) -> InboundEvent:
        return call(as_object(raw, at), channel_key, contact_of, at)

    for call_where, raw_call in _items(value, "calls", where, events, channel_key):
        events.extend(isolated(PLATFORM, channel_key, call_where, read_call, raw_call, call_where))
    return events


def _echoes(value: dict[str, Any], where: str, channel_key: str | None) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    for echo_where, raw_echo in _items(value, "message_echoes", where, events, channel_key):
        events.extend(
            isolated(
                PLATFORM, channel_key, echo_where, read_echo, raw_echo, channel_key, echo_where
            )
        )
    return events
