"""WhatsApp Cloud API: webhooks in (messages, statuses), text and media out.

A delivery is ``{"object": "whatsapp_business_account", "entry": [{"changes":
[{"field": "messages", "value": {...}}]}]}``; one delivery may batch several
entries, changes, messages and statuses, and each is handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from . import meta, sending
from .errors import PayloadError, SendError
from .payload import (
    as_list,
    as_object,
    as_str,
    load_json_object,
    opt_bool,
    opt_number,
    opt_object,
    opt_str,
    type_name,
    unix_time,
)
from .phones import to_e164
from .settings import ChannelSettings, WhatsAppSettings
from .signatures import verify_meta
from .types import (
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    OutboundMessage,
    Reaction,
    SendResult,
    StatusUpdate,
    WebhookRequest,
)

PLATFORM = "whatsapp"
OBJECT = "whatsapp_business_account"
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
_STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}
_KNOWN_KINDS = frozenset({"text", "location", "interactive", "button", *MEDIA_TYPES})
# Media kinds whose send payload accepts a caption.
_CAPTIONED = ("image", "video", "document")


class WhatsAppAdapter:
    kind = "whatsapp"

    def routing_keys(self, req: WebhookRequest) -> list[str]:
        """Every ``phone_number_id`` the delivery is addressed to, in order."""
        keys: list[str] = []
        for where, value in _values(load_json_object(req.body)):
            key = _phone_number_id(value, where)
            if key and key not in keys:
                keys.append(key)
        return keys

    def verify(self, req: WebhookRequest, settings: ChannelSettings) -> None:
        s = _settings(settings)
        secrets = [s.app_secret, *s.previous_app_secrets]
        verify_meta(req, [secret.get_secret_value() for secret in secrets])

    def challenge(self, req: WebhookRequest, settings: Sequence[ChannelSettings]) -> str | None:
        return meta.challenge(req, [_settings(s).verify_token.get_secret_value() for s in settings])

    def parse(self, req: WebhookRequest) -> list[InboundEvent]:
        body = load_json_object(req.body)
        events: list[InboundEvent] = []
        for where, value in _values(body):
            events.extend(_parse_value(value, where))
        return events

    async def send(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        settings: ChannelSettings,
        message: OutboundMessage,
    ) -> SendResult:
        s = _settings(settings)
        answer = await sending.post(
            client,
            f"{base_url.rstrip('/')}/{s.phone_number_id}/messages",
            meta.read_graph_error,
            json=_send_payload(message),
            headers={"Authorization": f"Bearer {s.access_token.get_secret_value()}"},
        )
        messages = answer.get("messages") if isinstance(answer, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        external_id = first.get("id") if isinstance(first, dict) else None
        if not isinstance(external_id, str) or not external_id:
            raise SendError(
                "WhatsApp accepted the message but sent no messages[0].id",
                retryable=False,
                code="bad_response",
            )
        return SendResult(external_id=external_id)


def _settings(settings: ChannelSettings) -> WhatsAppSettings:
    if not isinstance(settings, WhatsAppSettings):
        raise TypeError(f"expected WhatsAppSettings, got {type(settings).__name__}")
    return settings


def _values(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The ``value`` of every ``messages`` change, with where it sits in the body."""
    if body.get("object", OBJECT) != OBJECT:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    for i, raw_entry in enumerate(as_list(body.get("entry"), "entry")):
        entry = as_object(raw_entry, f"entry[{i}]")
        for j, raw_change in enumerate(as_list(entry.get("changes"), f"entry[{i}].changes")):
            where = f"entry[{i}].changes[{j}]"
            change = as_object(raw_change, where)
            # Other fields (account_update, templates, ...) are not conversations.
            if change.get("field", "messages") != "messages":
                continue
            value = opt_object(change.get("value"), f"{where}.value")
            if value is not None:
                found.append((f"{where}.value", value))
    return found


def _phone_number_id(value: dict[str, Any], where: str) -> str | None:
    metadata = opt_object(value.get("metadata"), f"{where}.metadata") or {}
    return opt_str(metadata.get("phone_number_id"), f"{where}.metadata.phone_number_id") or None


def _parse_value(value: dict[str, Any], where: str) -> list[InboundEvent]:
    channel_key = _phone_number_id(value, where)

    contacts: list[tuple[str | None, str | None]] = []
    for k, raw_contact in enumerate(as_list(value.get("contacts"), f"{where}.contacts")):
        contact = as_object(raw_contact, f"{where}.contacts[{k}]")
        profile = opt_object(contact.get("profile"), f"{where}.contacts[{k}].profile")
        name = opt_str(profile.get("name"), f"{where}.contacts[{k}].profile") if profile else None
        contacts.append((opt_str(contact.get("wa_id"), f"{where}.contacts[{k}]"), name or None))

    events: list[InboundEvent] = []
    for k, raw_message in enumerate(as_list(value.get("messages"), f"{where}.messages")):
        message_where = f"{where}.messages[{k}]"
        message = as_object(raw_message, message_where)
        events.append(_parse_message(message, channel_key, contacts, message_where))
    for k, raw_status in enumerate(as_list(value.get("statuses"), f"{where}.statuses")):
        status_where = f"{where}.statuses[{k}]"
        status = _parse_status(as_object(raw_status, status_where), channel_key, status_where)
        if status is not None:
            events.append(status)
    return events


def _parse_message(
    message: dict[str, Any],
    channel_key: str | None,
    contacts: list[tuple[str | None, str | None]],
    where: str,
) -> InboundMessage | Reaction:
    sender_phone_field = opt_str(message.get("from"), f"{where}.from")
    # The contact entry names the sender; its wa_id is the identity, which the
    # documentation warns may differ from the phone number in ``from``.
    wa_id, name = _contact_for(sender_phone_field, contacts)
    sender_id = wa_id or sender_phone_field
    if not sender_id:
        raise PayloadError("message has neither from nor a contact wa_id", where)
    external_id = as_str(message.get("id"), f"{where}.id")
    timestamp = unix_time(message.get("timestamp"), f"{where}.timestamp")
    kind = type_name(opt_str(message.get("type"), f"{where}.type"))
    context = opt_object(message.get("context"), f"{where}.context")
    reply_to = opt_str(context.get("id"), f"{where}.context.id") if context else None
    phone = to_e164(sender_phone_field) or to_e164(wa_id)

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

    content, attachments, raw = _content(kind, message, where)
    referral = opt_object(message.get("referral"), f"{where}.referral")
    if referral:
        raw["referral"] = referral
    return InboundMessage(
        platform=PLATFORM,
        channel_key=channel_key,
        sender_id=sender_id,
        external_id=external_id,
        timestamp=timestamp,
        content=content,
        content_type=kind,
        sender_name=name,
        sender_phone=phone,
        attachments=attachments,
        raw=raw,
        reply_to=reply_to,
    )


def _contact_for(
    sender: str | None, contacts: list[tuple[str | None, str | None]]
) -> tuple[str | None, str | None]:
    for wa_id, name in contacts:
        if sender is not None and wa_id == sender:
            return wa_id, name
    if len(contacts) == 1:
        return contacts[0]
    return None, None


def _content(
    kind: str, message: dict[str, Any], where: str
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(content, attachments, raw extras) of one message of type ``kind``."""
    part_where = f"{where}.{kind}"
    raw: dict[str, Any] = {}

    if kind == "contacts":
        # Here "contacts" is the list of shared contact cards, not an object.
        shared = as_list(message.get("contacts"), part_where)
        names: list[str] = []
        for k, raw_card in enumerate(shared):
            card = as_object(raw_card, f"{part_where}[{k}]")
            card_name = opt_object(card.get("name"), f"{part_where}[{k}].name") or {}
            formatted = opt_str(card_name.get("formatted_name"), f"{part_where}[{k}].name")
            if formatted:
                names.append(formatted)
        raw["contacts"] = shared
        return ", ".join(names), [], raw

    if kind not in _KNOWN_KINDS:
        # Unsupported, system, order and types added later: keep what came.
        if kind in message:
            raw[kind] = message[kind]
        if isinstance(message.get("errors"), list):
            raw["errors"] = message["errors"]
        body = message[kind].get("body") if isinstance(message.get(kind), dict) else None
        return body if isinstance(body, str) else "", [], raw

    part = opt_object(message.get(kind), part_where)

    if kind == "text":
        return opt_str((part or {}).get("body"), f"{part_where}.body") or "", [], raw

    if kind in MEDIA_TYPES:
        media = part or {}
        attachment: dict[str, Any] = {"type": kind}
        for source, target in (
            ("id", "media_id"),
            ("mime_type", "mime_type"),
            ("sha256", "sha256"),
            ("caption", "caption"),
            ("filename", "filename"),
            ("url", "url"),
        ):
            text = opt_str(media.get(source), f"{part_where}.{source}")
            if text:
                attachment[target] = text
        for flag in ("voice", "animated"):
            if flag in media:
                attachment[flag] = opt_bool(media.get(flag), f"{part_where}.{flag}")
        return attachment.get("caption", ""), [attachment], raw

    if kind == "location":
        location = part or {}
        latitude = opt_number(location.get("latitude"), f"{part_where}.latitude")
        longitude = opt_number(location.get("longitude"), f"{part_where}.longitude")
        fields = {
            key: opt_str(location.get(key), f"{part_where}.{key}")
            for key in ("name", "address", "url")
        }
        raw["location"] = {
            "latitude": latitude,
            "longitude": longitude,
            **{key: text for key, text in fields.items() if text},
        }
        label = ", ".join(text for text in (fields["name"], fields["address"]) if text)
        if not label and latitude is not None and longitude is not None:
            label = f"{latitude}, {longitude}"
        return label, [], raw

    if kind == "interactive":
        interactive = part or {}
        reply_kind = opt_str(interactive.get("type"), f"{part_where}.type") or ""
        reply = opt_object(interactive.get(reply_kind), f"{part_where}.{reply_kind}") or {}
        raw["interactive"] = interactive
        title = opt_str(reply.get("title"), f"{part_where}.{reply_kind}.title")
        return title or opt_str(reply.get("body"), f"{part_where}.{reply_kind}.body") or "", [], raw

    if kind == "button":
        button = part or {}
        raw["button"] = button
        return opt_str(button.get("text"), f"{part_where}.text") or "", [], raw

    return "", [], raw


def _parse_status(
    status: dict[str, Any], channel_key: str | None, where: str
) -> StatusUpdate | None:
    platform_status = as_str(status.get("status"), f"{where}.status")
    normalized = _STATUSES.get(platform_status)
    if normalized is None:
        # e.g. "deleted", "warning", "played": not a delivery step of ours.
        return None
    error_code: str | None = None
    error_message: str | None = None
    errors = as_list(status.get("errors"), f"{where}.errors")
    if errors:
        first = as_object(errors[0], f"{where}.errors[0]")
        error_code = opt_str(first.get("code"), f"{where}.errors[0].code")
        title = opt_str(first.get("title"), f"{where}.errors[0].title") or opt_str(
            first.get("message"), f"{where}.errors[0].message"
        )
        data = opt_object(first.get("error_data"), f"{where}.errors[0].error_data") or {}
        details = opt_str(data.get("details"), f"{where}.errors[0].error_data.details")
        error_message = ": ".join(text for text in (title, details) if text) or None
    return StatusUpdate(
        platform=PLATFORM,
        channel_key=channel_key,
        external_id=as_str(status.get("id"), f"{where}.id"),
        status=normalized,
        timestamp=unix_time(status.get("timestamp"), f"{where}.timestamp"),
        recipient_id=opt_str(status.get("recipient_id"), f"{where}.recipient_id"),
        error_code=error_code,
        error_message=error_message,
        platform_status=platform_status,
    )


def _send_payload(message: OutboundMessage) -> dict[str, Any]:
    # wa_ids are digits; an E.164 number is accepted after dropping its "+".
    to = message.to[1:] if message.to.startswith("+") else message.to
    if not message.attachments:
        if not message.text:
            raise SendError("nothing to send", retryable=False, code="unsupported")
        return {
            "messaging_product": "whatsapp",
            "to": to,
            "type": "text",
            "text": {"body": message.text},
        }
    if len(message.attachments) > 1:
        raise SendError(
            "a WhatsApp message carries at most one attachment", retryable=False, code="unsupported"
        )
    attachment = message.attachments[0]
    url = attachment.get("url")
    if not isinstance(url, str) or not url:
        raise SendError("attachment has no url", retryable=False, code="unsupported")
    kind = _media_kind(attachment)
    media: dict[str, Any] = {"link": url}
    if message.text:
        if kind not in _CAPTIONED:
            raise SendError(
                f"a WhatsApp {kind} cannot carry text", retryable=False, code="unsupported"
            )
        media["caption"] = message.text
    filename = attachment.get("filename")
    if kind == "document" and isinstance(filename, str) and filename:
        media["filename"] = filename
    return {"messaging_product": "whatsapp", "to": to, "type": kind, kind: media}


def _media_kind(attachment: dict[str, Any]) -> str:
    kind = attachment.get("type")
    if isinstance(kind, str) and kind in MEDIA_TYPES:
        return kind
    mime = attachment.get("mime_type")
    prefix = mime.split("/", 1)[0] if isinstance(mime, str) else ""
    return prefix if prefix in ("image", "audio", "video") else "document"
