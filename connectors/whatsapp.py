"""WhatsApp Cloud API: webhooks in (``whatsapp_inbound``), text and media out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from . import meta, sending
from .errors import SendError
from .payload import load_json_object
from .settings import ChannelSettings, WhatsAppSettings, expect
from .types import InboundEvent, OutboundMessage, SendResult, WebhookRequest
from .whatsapp_content import MEDIA_TYPES
from .whatsapp_inbound import OBJECT, PLATFORM, account_ids, parse_delivery, phone_number_ids

__all__ = ["MEDIA_TYPES", "OBJECT", "PLATFORM", "WhatsAppAdapter"]

# Media kinds whose send payload accepts a caption.
_CAPTIONED = ("image", "video", "document")


class WhatsAppAdapter:
    kind = "whatsapp"

    def routing_keys(self, req: WebhookRequest) -> list[str]:
        """Every ``phone_number_id`` the delivery is addressed to, in order."""
        return phone_number_ids(load_json_object(req.body))

    def account_keys(self, req: WebhookRequest) -> list[str]:
        """Every WhatsApp Business Account id (``entry[].id``) the delivery names: some
        fields (``account_update``, ...) name no phone number id."""
        return account_ids(load_json_object(req.body))

    def verify(self, req: WebhookRequest, settings: ChannelSettings) -> None:
        meta.verify(req, expect(WhatsAppSettings, settings))

    def challenge(self, req: WebhookRequest, settings: Sequence[ChannelSettings]) -> str | None:
        return meta.challenge(req, [expect(WhatsAppSettings, s) for s in settings])

    def parse(self, req: WebhookRequest) -> list[InboundEvent]:
        return parse_delivery(load_json_object(req.body))

    async def send(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        settings: ChannelSettings,
        message: OutboundMessage,
    ) -> SendResult:
        s = expect(WhatsAppSettings, settings)
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


def _send_payload(message: OutboundMessage) -> dict[str, Any]:
    # wa_ids are digits; an E.164 number is accepted after dropping its "+".
    to = message.to[1:] if message.to.startswith("+") else message.to
    if message.template is not None:
        return {
            "messaging_product": "whatsapp",
            "to": to,
            "type": "template",
            "template": message.template,
        }
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
