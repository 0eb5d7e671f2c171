"""Instagram Messaging: webhooks in (messages, echoes, deletions, reactions,
reads, postbacks), text or one attachment out.

A delivery is ``{"object": "instagram", "entry": [{"id": <account id>,
"messaging": [{"sender", "recipient", "timestamp", "message" | "reaction" |
"read" | "postback"}]}]}``; ``entry.id`` is our professional account.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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
    opt_object,
    opt_str,
    type_name,
    unix_time,
)
from .settings import ChannelSettings, InstagramSettings
from .signatures import verify_meta
from .types import (
    Deletion,
    Echo,
    InboundEvent,
    InboundMessage,
    OutboundMessage,
    Reaction,
    ReadReceipt,
    SendResult,
    WebhookRequest,
)

PLATFORM = "instagram"
OBJECT = "instagram"
# Instagram attachment types and the content types they become here.
_ATTACHMENT_TYPES = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
_SEND_TYPES = {"image": "image", "video": "video", "audio": "audio", "document": "file"}


class InstagramAdapter:
    kind = "instagram"

    def routing_keys(self, req: WebhookRequest) -> list[str]:
        """The account ids (``entry[].id``) the delivery is addressed to."""
        keys: list[str] = []
        for where, entry in _entries(load_json_object(req.body)):
            key = opt_str(entry.get("id"), f"{where}.id")
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
        events: list[InboundEvent] = []
        for where, entry in _entries(load_json_object(req.body)):
            channel_key = opt_str(entry.get("id"), f"{where}.id")
            for k, raw_item in enumerate(as_list(entry.get("messaging"), f"{where}.messaging")):
                item_where = f"{where}.messaging[{k}]"
                event = _parse_item(as_object(raw_item, item_where), channel_key, item_where)
                if event is not None:
                    events.append(event)
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
            f"{base_url.rstrip('/')}/{s.account_id}/messages",
            meta.read_graph_error,
            json={"recipient": {"id": message.to}, "message": _send_message(message)},
            headers={"Authorization": f"Bearer {s.access_token.get_secret_value()}"},
        )
        external_id = answer.get("message_id") if isinstance(answer, dict) else None
        if not isinstance(external_id, str) or not external_id:
            raise SendError(
                "Instagram accepted the message but sent no message_id",
                retryable=False,
                code="bad_response",
            )
        return SendResult(external_id=external_id)


def _settings(settings: ChannelSettings) -> InstagramSettings:
    if not isinstance(settings, InstagramSettings):
        raise TypeError(f"expected InstagramSettings, got {type(settings).__name__}")
    return settings


def _entries(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if body.get("object", OBJECT) != OBJECT:
        return []
    return [
        (f"entry[{i}]", as_object(entry, f"entry[{i}]"))
        for i, entry in enumerate(as_list(body.get("entry"), "entry"))
    ]


def _parse_item(item: dict[str, Any], channel_key: str | None, where: str) -> InboundEvent | None:
    sender = opt_object(item.get("sender"), f"{where}.sender") or {}
    recipient = opt_object(item.get("recipient"), f"{where}.recipient") or {}
    sender_id = opt_str(sender.get("id"), f"{where}.sender.id")
    recipient_id = opt_str(recipient.get("id"), f"{where}.recipient.id")

    if "message" in item:
        message = as_object(item["message"], f"{where}.message")
        return _parse_message(message, item, channel_key, sender_id, recipient_id, where)
    if "reaction" in item:
        reaction = as_object(item["reaction"], f"{where}.reaction")
        action = opt_str(reaction.get("action"), f"{where}.reaction.action")
        emoji = opt_str(reaction.get("emoji"), f"{where}.reaction.emoji") or opt_str(
            reaction.get("reaction"), f"{where}.reaction.reaction"
        )
        return Reaction(
            platform=PLATFORM,
            channel_key=channel_key,
            sender_id=_required(sender_id, f"{where}.sender.id"),
            target_id=as_str(reaction.get("mid"), f"{where}.reaction.mid"),
            emoji=None if action == "unreact" else emoji or None,
            timestamp=_timestamp(item, where),
        )
    if "read" in item:
        read = as_object(item["read"], f"{where}.read")
        mid = opt_str(read.get("mid"), f"{where}.read.mid")
        watermark = read.get("watermark")
        return ReadReceipt(
            platform=PLATFORM,
            channel_key=channel_key,
            reader_id=_required(sender_id, f"{where}.sender.id"),
            timestamp=_timestamp(item, where),
            message_ids=(mid,) if mid else (),
            watermark=(
                unix_time(watermark, f"{where}.read.watermark", millis=True)
                if watermark is not None
                else None
            ),
        )
    if "postback" in item:
        postback = as_object(item["postback"], f"{where}.postback")
        return InboundMessage(
            platform=PLATFORM,
            channel_key=channel_key,
            sender_id=_required(sender_id, f"{where}.sender.id"),
            external_id=opt_str(postback.get("mid"), f"{where}.postback.mid") or None,
            timestamp=_timestamp(item, where),
            content=opt_str(postback.get("title"), f"{where}.postback.title") or "",
            content_type="postback",
            raw={"postback": postback},
        )
    # Referrals, handover and fields added later carry no conversation content.
    return None


def _parse_message(
    message: dict[str, Any],
    item: dict[str, Any],
    channel_key: str | None,
    sender_id: str | None,
    recipient_id: str | None,
    where: str,
) -> InboundEvent:
    message_where = f"{where}.message"
    mid = as_str(message.get("mid"), f"{message_where}.mid")
    timestamp = _timestamp(item, where)
    text = opt_str(message.get("text"), f"{message_where}.text") or ""
    attachments = _attachments(message, message_where)

    if opt_bool(message.get("is_echo"), f"{message_where}.is_echo"):
        return Echo(
            platform=PLATFORM,
            channel_key=channel_key,
            external_id=mid,
            recipient_id=_required(recipient_id, f"{where}.recipient.id"),
            timestamp=timestamp,
            content=text,
            attachments=attachments,
        )
    if opt_bool(message.get("is_deleted"), f"{message_where}.is_deleted"):
        return Deletion(
            platform=PLATFORM,
            channel_key=channel_key,
            sender_id=_required(sender_id, f"{where}.sender.id"),
            target_id=mid,
            timestamp=timestamp,
        )

    raw: dict[str, Any] = {}
    for key in ("quick_reply", "referral", "reply_to"):
        value = message.get(key)
        if isinstance(value, dict):
            raw[key] = value
    reply_to = raw.get("reply_to", {}).get("mid")
    if opt_bool(message.get("is_unsupported"), f"{message_where}.is_unsupported"):
        content_type = "unsupported"
    elif attachments:
        content_type = str(attachments[0]["type"])
    else:
        content_type = "text"
    return InboundMessage(
        platform=PLATFORM,
        channel_key=channel_key,
        sender_id=_required(sender_id, f"{where}.sender.id"),
        external_id=mid,
        timestamp=timestamp,
        content=text,
        content_type=content_type,
        attachments=attachments,
        raw=raw,
        reply_to=reply_to if isinstance(reply_to, str) and reply_to else None,
    )


def _attachments(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for k, raw_attachment in enumerate(as_list(message.get("attachments"), f"{where}.attachments")):
        attachment_where = f"{where}.attachments[{k}]"
        attachment = as_object(raw_attachment, attachment_where)
        platform_type = opt_str(attachment.get("type"), f"{attachment_where}.type") or "file"
        kind = type_name(_ATTACHMENT_TYPES.get(platform_type, platform_type))
        payload = opt_object(attachment.get("payload"), f"{attachment_where}.payload") or {}
        entry: dict[str, Any] = {"type": kind}
        for key in ("url", "title"):
            text = opt_str(payload.get(key), f"{attachment_where}.payload.{key}")
            if text:
                entry[key] = text
        found.append(entry)
    return found


def _timestamp(item: dict[str, Any], where: str) -> datetime:
    return unix_time(item.get("timestamp"), f"{where}.timestamp", millis=True)


def _required(value: str | None, where: str) -> str:
    if not value:
        raise PayloadError("expected a non-empty string", where)
    return value


def _send_message(message: OutboundMessage) -> dict[str, Any]:
    if not message.attachments:
        if not message.text:
            raise SendError("nothing to send", retryable=False, code="unsupported")
        return {"text": message.text}
    if message.text or len(message.attachments) > 1:
        raise SendError(
            "an Instagram message carries either text or one attachment",
            retryable=False,
            code="unsupported",
        )
    attachment = message.attachments[0]
    url = attachment.get("url")
    if not isinstance(url, str) or not url:
        raise SendError("attachment has no url", retryable=False, code="unsupported")
    kind = attachment.get("type")
    send_type = _SEND_TYPES.get(kind, "file") if isinstance(kind, str) else "file"
    return {"attachment": {"type": send_type, "payload": {"url": url}}}
