"""Twilio Programmable Messaging (SMS/MMS), the ``sms`` channel kind.

Incoming messages and status callbacks are form posts signed with
``X-Twilio-Signature``; an incoming message is routed by ``To`` (our number),
a status callback by ``From`` (our number again, the sender of the message) when
it is a number. A callback may name no number of ours -- the message went out
through a Messaging Service, from an alphanumeric sender, or over a channel such
as WhatsApp (``From=whatsapp:+1...``, ``ChannelToAddress``) -- so a status callback
also names the message it is about (``MessageSid``) and the account that sent it
(``AccountSid``), by which the application finds the channel that sent it.
Twilio sends no event time, so events are stamped with the time of parsing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from . import sending
from .errors import PayloadError, SendError
from .payload import load_form
from .phones import to_e164
from .settings import ChannelSettings, SmsSettings, expect
from .signatures import verify_twilio
from .twilio_errors import error_text
from .types import (
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    WebhookRequest,
)

PLATFORM = "sms"
# The body that acknowledges an incoming message without replying to it.
TWIML_EMPTY_RESPONSE = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
TWIML_MEDIA_TYPE = "text/xml"

_STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
# Statuses of an incoming message rather than of one we sent.
_INBOUND_STATUSES = frozenset({"received", "receiving"})
# Twilio API error codes that mean "later": too many requests, internal error,
# service unavailable.
_RETRYABLE_CODES = frozenset({"20429", "20500", "20503"})
_MEDIA_URL = re.compile(r"MediaUrl(\d{1,3})")
# What a channel's own number looks like (``SmsSettings.phone_number``): a ``From``
# of any other shape (``MG...``, an alphanumeric sender, ``whatsapp:+1...``) cannot be
# one, and is not looked up as one.
_OUR_NUMBER = re.compile(r"\+\d{7,31}")


class TwilioAdapter:
    kind = "sms"

    def routing_keys(self, req: WebhookRequest) -> list[str]:
        fields = _fields(req)
        key = _sender(fields) if _is_status_callback(fields) else fields.get("To")
        return [key] if key else []

    def message_keys(self, req: WebhookRequest) -> list[str]:
        """The id of the message a status callback reports on; none for an incoming one."""
        fields = _fields(req)
        if not _is_status_callback(fields):
            return []
        sids = (fields.get(name, "").strip() for name in ("MessageSid", "SmsSid"))
        return [sid for sid in sids if sid][:1]

    def message_accounts(self, req: WebhookRequest) -> list[str]:
        """The account (``AccountSid``) that sent the message a status callback reports on."""
        fields = _fields(req)
        account = fields.get("AccountSid", "").strip() if _is_status_callback(fields) else ""
        return [account] if account else []

    def verify(self, req: WebhookRequest, settings: ChannelSettings) -> None:
        s = expect(SmsSettings, settings)
        tokens = [s.auth_token, *s.previous_auth_tokens]
        verify_twilio(req, [token.get_secret_value() for token in tokens])

    def challenge(self, req: WebhookRequest, settings: Sequence[ChannelSettings]) -> str | None:
        # Twilio has no subscription handshake.
        return None

    def parse(self, req: WebhookRequest) -> list[InboundEvent]:
        fields = _fields(req)
        if _is_status_callback(fields):
            status = _parse_status(fields)
            return [status] if status is not None else []
        return [_parse_message(fields)]

    async def send(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        settings: ChannelSettings,
        message: OutboundMessage,
    ) -> SendResult:
        s = expect(SmsSettings, settings)
        media = [a.get("url") for a in message.attachments]
        if not all(isinstance(url, str) and url for url in media):
            raise SendError("attachment has no url", retryable=False, code="unsupported")
        if not message.text and not media:
            raise SendError("nothing to send", retryable=False, code="unsupported")
        form: dict[str, Any] = {"To": message.to, "From": s.phone_number, "Body": message.text}
        if media:
            form["MediaUrl"] = media
        if message.status_callback:
            form["StatusCallback"] = message.status_callback
        answer = await sending.post(
            client,
            f"{base_url.rstrip('/')}/2010-04-01/Accounts/{s.account_sid}/Messages.json",
            _read_error,
            data=form,
            auth=httpx.BasicAuth(s.account_sid, s.auth_token.get_secret_value()),
        )
        sid = answer.get("sid") if isinstance(answer, dict) else None
        if not isinstance(sid, str) or not sid:
            raise SendError(
                "Twilio accepted the message but sent no sid", retryable=False, code="bad_response"
            )
        return SendResult(external_id=sid)


def _fields(req: WebhookRequest) -> dict[str, str]:
    """Every posted field (the first value of a repeated name), GET query included."""
    pairs = load_form(req.body) if req.method.upper() == "POST" else list(req.query.items())
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _is_status_callback(fields: dict[str, str]) -> bool:
    status = fields.get("MessageStatus") or fields.get("SmsStatus")
    return status is not None and status not in _INBOUND_STATUSES


def _sender(fields: dict[str, str]) -> str | None:
    """A status callback's ``From`` when it can be one of our numbers, else None."""
    sender = fields.get("From", "").strip()
    return sender if _OUR_NUMBER.fullmatch(sender) else None


def _required(fields: dict[str, str], *names: str) -> str:
    for name in names:
        value = fields.get(name, "").strip()
        if value:
            return value
    raise PayloadError("missing field", names[0])


def _parse_message(fields: dict[str, str]) -> InboundMessage:
    sender = _required(fields, "From")
    attachments: list[dict[str, Any]] = []
    for index in sorted(
        int(match.group(1)) for name in fields if (match := _MEDIA_URL.fullmatch(name))
    ):
        url = fields[f"MediaUrl{index}"]
        if not url:
            continue
        attachment: dict[str, Any] = {"url": url}
        mime = fields.get(f"MediaContentType{index}", "")
        attachment["type"] = _media_kind(mime)
        if mime:
            attachment["mime_type"] = mime
        attachments.append(attachment)
    content = fields.get("Body", "")
    if not content and not attachments:
        # Nothing is stored that an agent cannot read: say what arrived.
        announced = fields.get("NumMedia", "0").strip()
        content = (
            f"(a message with {announced} media files that did not arrive)"
            if announced.isdigit() and int(announced) > 0
            else "(an empty message)"
        )
    return InboundMessage(
        platform=PLATFORM,
        channel_key=_required(fields, "To"),
        sender_id=sender,
        external_id=_required(fields, "MessageSid", "SmsMessageSid", "SmsSid"),
        timestamp=datetime.now(UTC),
        content=content,
        content_type=attachments[0]["type"] if attachments else "text",
        sender_name=fields.get("ProfileName") or None,
        sender_phone=to_e164(sender),
        attachments=attachments,
        raw=dict(fields),
    )


def _parse_status(fields: dict[str, str]) -> StatusUpdate | None:
    platform_status = fields.get("MessageStatus") or fields.get("SmsStatus") or ""
    status = _STATUSES.get(platform_status)
    if status is None:
        # queued, accepted, scheduled, sending: steps before "sent".
        return None
    error_code = fields.get("ErrorCode", "").strip() or None
    # Callbacks carry the code alone (ErrorMessage only rarely): say what it means.
    error_message = (
        error_text(error_code, fields.get("ErrorMessage")) if error_code is not None else None
    )
    return StatusUpdate(
        platform=PLATFORM,
        channel_key=_sender(fields),
        external_id=_required(fields, "MessageSid", "SmsSid"),
        status=status,
        timestamp=datetime.now(UTC),
        recipient_id=fields.get("To") or None,
        error_code=error_code,
        error_message=error_message,
        platform_status=platform_status,
    )


def _media_kind(mime: str) -> str:
    prefix = mime.split("/", 1)[0].lower()
    return prefix if prefix in ("image", "audio", "video") else "document"


def _read_error(response: httpx.Response) -> tuple[str | None, str | None, bool]:
    """(code, message, retryable) from ``{"code", "message", "more_info", "status"}``."""
    body = sending.json_body(response)
    raw_code = body.get("code")
    code = str(raw_code) if isinstance(raw_code, int | str) and raw_code != "" else None
    message = body.get("message") if isinstance(body.get("message"), str) else None
    return code, message, code in _RETRYABLE_CODES
