"""Instagram Messaging: webhooks in (messages, echoes, deletions, edits,
reactions, reads, postbacks, story mentions and replies), text or one attachment
out.

A delivery is ``{"object": "instagram", "entry": [{"id": <account id>,
"messaging": [{"sender", "recipient", "timestamp", "message" | "reaction" |
"read" | "postback" | "message_edit"}], "changes": [{"field", "value"}]}]}``;
``entry.id`` is our professional account. ``changes`` (comments, mentions, live
comments, story insights) and other messaging kinds become Unhandled events; a part
that is not what the platform documents becomes an Unreadable event and costs only
itself.
"""

from __future__ import annotations

import hashlib
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
from .settings import ChannelSettings, InstagramSettings, expect
from .types import (
    Deletion,
    Echo,
    InboundEvent,
    InboundMessage,
    MessageEdit,
    OutboundMessage,
    Reaction,
    ReadReceipt,
    SendResult,
    Unhandled,
    Unreadable,
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
        """The account ids (``entry[].id``) the delivery is addressed to; never raises
        for a body that is a JSON object."""
        body = load_json_object(req.body)
        entries = body.get("entry") if body.get("object", OBJECT) == OBJECT else None
        keys: list[str] = []
        for entry in entries if isinstance(entries, list) else []:
            key = meta.lenient_str(entry.get("id")) if isinstance(entry, dict) else None
            if key and key not in keys:
                keys.append(key)
        return keys

    def verify(self, req: WebhookRequest, settings: ChannelSettings) -> None:
        meta.verify(req, expect(InstagramSettings, settings))

    def challenge(self, req: WebhookRequest, settings: Sequence[ChannelSettings]) -> str | None:
        return meta.challenge(req, [expect(InstagramSettings, s) for s in settings])

    def parse(self, req: WebhookRequest) -> list[InboundEvent]:
        body = load_json_object(req.body)
        if body.get("object", OBJECT) != OBJECT:
            return [Unhandled(PLATFORM, None, "object", "object")]
        try:
            entries = as_list(body.get("entry"), "entry")
        except PayloadError as exc:
            return [Unreadable(PLATFORM, None, "entry", exc.message)]
        events: list[InboundEvent] = []
        for i, raw_entry in enumerate(entries):
            events.extend(meta.isolated(PLATFORM, None, f"entry[{i}]", _entry, raw_entry, i))
        return events

    async def send(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        settings: ChannelSettings,
        message: OutboundMessage,
    ) -> SendResult:
        s = expect(InstagramSettings, settings)
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


def _entry(raw: Any, i: int) -> list[InboundEvent]:
    where = f"entry[{i}]"
    entry = as_object(raw, where)
    channel_key = opt_str(entry.get("id"), f"{where}.id") or None
    events: list[InboundEvent] = []
    for key in ("messaging", "standby"):
        try:
            items = as_list(entry.get(key), f"{where}.{key}")
        except PayloadError as exc:
            events.append(Unreadable(PLATFORM, channel_key, f"{where}.{key}", exc.message))
            continue
        for k, raw_item in enumerate(items):
            item_where = f"{where}.{key}[{k}]"
            if key == "standby":
                # Another app holds the thread (handover): seen, not ours to answer.
                events.append(
                    Unhandled(PLATFORM, channel_key, "standby", item_where, {"item": raw_item})
                )
                continue
            events.extend(
                meta.isolated(
                    PLATFORM, channel_key, item_where, _item, raw_item, channel_key, item_where
                )
            )
    try:
        changes = as_list(entry.get("changes"), f"{where}.changes")
    except PayloadError as exc:
        return [*events, Unreadable(PLATFORM, channel_key, f"{where}.changes", exc.message)]
    for k, raw_change in enumerate(changes):
        change = raw_change if isinstance(raw_change, dict) else {}
        name = change.get("field")
        value = change.get("value")
        # Comments, mentions, live comments, story insights: acknowledged, kept whole.
        events.append(
            Unhandled(
                PLATFORM,
                channel_key,
                name[:64] if isinstance(name, str) and name else "changes",
                f"{where}.changes[{k}]",
                value if isinstance(value, dict) else {"value": value},
                channel_key,
            )
        )
    return events


def _item(raw: Any, channel_key: str | None, where: str) -> InboundEvent:
    return _parse_item(as_object(raw, where), channel_key, where)


def _parse_item(item: dict[str, Any], channel_key: str | None, where: str) -> InboundEvent:
    sender = opt_object(item.get("sender"), f"{where}.sender") or {}
    recipient = opt_object(item.get("recipient"), f"{where}.recipient") or {}
    sender_id = opt_str(sender.get("id"), f"{where}.sender.id")
    recipient_id = opt_str(recipient.get("id"), f"{where}.recipient.id")

    ours = channel_key is not None and sender_id == channel_key
    if "message" in item:
        message = as_object(item["message"], f"{where}.message")
        if ours and recipient_id:
            # Sent by the account itself: an echo even when the flag is missing, never
            # a message from a customer who happens to be us.
            message = {**message, "is_echo": True}
        return _parse_message(message, item, channel_key, sender_id, recipient_id, where)
    if ours:
        kind = next((key for key in item if key not in ("sender", "recipient", "timestamp")), "")
        return Unhandled(
            PLATFORM, channel_key, f"messaging.from_business.{type_name(kind)}", where, item
        )
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
        return _postback(item, channel_key, sender_id, recipient_id, where)
    if "message_edit" in item:
        edit = as_object(item["message_edit"], f"{where}.message_edit")
        mid = as_str(edit.get("mid"), f"{where}.message_edit.mid")
        text = as_str(edit.get("text"), f"{where}.message_edit.text")
        count = opt_str(edit.get("num_edit"), f"{where}.message_edit.num_edit") or "1"
        return MessageEdit(
            platform=PLATFORM,
            channel_key=channel_key,
            sender_id=_required(sender_id, f"{where}.sender.id"),
            target_id=mid,
            content=text,
            timestamp=_timestamp(item, where),
            # Each edit of a message is numbered: a retry of one is a duplicate.
            external_id=f"{mid}:edit:{count}",
        )
    # Referrals, opt-ins, handover and kinds added later carry no conversation content.
    kind = next((key for key in item if key not in ("sender", "recipient", "timestamp")), "")
    return Unhandled(PLATFORM, channel_key, f"messaging.{type_name(kind)}", where, item)


def _postback(
    item: dict[str, Any],
    channel_key: str | None,
    sender_id: str | None,
    recipient_id: str | None,
    where: str,
) -> InboundMessage:
    postback = as_object(item["postback"], f"{where}.postback")
    sender = _required(sender_id, f"{where}.sender.id")
    timestamp = _timestamp(item, where)
    title = opt_str(postback.get("title"), f"{where}.postback.title")
    payload = opt_str(postback.get("payload"), f"{where}.postback.payload")
    mid = opt_str(postback.get("mid"), f"{where}.postback.mid")
    if not mid:
        # Without a platform id a retry must still find the first copy: the same tap
        # (who, to whom, when, which button) always gives the same key.
        tap = f"{sender}\n{recipient_id or ''}\n{item.get('timestamp')}\n{payload or title or ''}"
        mid = "postback:" + hashlib.sha256(tap.encode("utf-8")).hexdigest()[:32]
    return InboundMessage(
        platform=PLATFORM,
        channel_key=channel_key,
        sender_id=sender,
        external_id=mid,
        timestamp=timestamp,
        content=title or payload or "Button tapped",
        content_type="postback",
        raw={"postback": postback},
    )


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
    story = raw.get("reply_to", {}).get("story")
    if opt_bool(message.get("is_unsupported"), f"{message_where}.is_unsupported"):
        content_type = "unsupported"
        text = text or "Unsupported message"
    elif attachments and attachments[0]["type"] == "story_mention":
        content_type = "story_mention"
        text = text or "Mentioned you in their story"
    elif isinstance(story, dict):
        content_type = "story_reply"
        text = f"Replied to your story: {text}" if text else "Replied to your story"
        story_where = f"{message_where}.reply_to.story"
        link: dict[str, Any] = {"type": "story"}
        for key, target in (("url", "url"), ("id", "story_id")):
            value = opt_str(story.get(key), f"{story_where}.{key}")
            if value:
                link[target] = value
        attachments = [*attachments, link]
    elif attachments:
        content_type = str(attachments[0]["type"])
    else:
        content_type = "text"
    if not text and not attachments:
        raise PayloadError("a message needs text or an attachment", message_where)
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
