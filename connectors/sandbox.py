"""A stand-in platform for channels whose settings say ``sandbox``.

A send is accepted at once, without the network, and given a platform-looking id;
the platform's delivery reports that would follow are scripted (``reports``) as the
normalized ``StatusUpdate`` events a status webhook of that platform parses into, so
the application can apply them through its webhook path. Together they show the whole
life of a reply (queued, sent, delivered, read) with nothing configured.

Each kind reports what its platform reports: WhatsApp tells delivered then read,
Instagram only that the message was seen, Twilio SMS only delivered (SMS has no read
receipts). A sandbox that invented more would teach what the real channel never shows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import SendError
from .settings import ChannelSettings, InstagramSettings, SmsSettings, WhatsAppSettings
from .types import DeliveryStatus, OutboundMessage, SendResult, StatusUpdate

__all__ = ["ID_PREFIX", "REPORTS", "Report", "is_sandbox", "reports", "send"]

# Marks the ids the sandbox hands out: never mistaken for a platform's.
ID_PREFIX = "sandbox."

_KINDS: dict[type[ChannelSettings], str] = {
    WhatsAppSettings: "whatsapp",
    InstagramSettings: "instagram",
    SmsSettings: "sms",
}

# Per kind: each report, and how long after the send it comes, in seconds. Long enough
# apart for a person to see each step in the console.
REPORTS: dict[str, tuple[tuple[float, DeliveryStatus], ...]] = {
    "whatsapp": ((1.0, "delivered"), (2.5, "read")),
    "instagram": ((2.5, "read"),),
    "sms": ((1.0, "delivered"),),
}


@dataclass(frozen=True)
class Report:
    """A delivery report the sandbox platform sends ``after`` seconds past the send."""

    after: float
    event: StatusUpdate


def is_sandbox(settings: ChannelSettings) -> bool:
    """Whether the channel sends through the sandbox rather than its platform."""
    return type(settings) in _KINDS and bool(getattr(settings, "sandbox", False))


def _kind(settings: ChannelSettings) -> str:
    if not is_sandbox(settings):
        raise TypeError(f"not a sandbox channel: {type(settings).__name__}")
    return _KINDS[type(settings)]


async def send(settings: ChannelSettings, message: OutboundMessage) -> SendResult:
    """Accept ``message`` as the platform would, without calling anything.

    Refuses only what no platform accepts either (nobody to send to, nothing to send),
    so that a reply that works here is not refused later for reasons of form.
    """
    _kind(settings)
    if not message.to:
        raise SendError("The message names no recipient", retryable=False, code="no_recipient")
    if not message.text and not message.attachments:
        raise SendError("nothing to send", retryable=False, code="unsupported")
    return SendResult(external_id=f"{ID_PREFIX}{uuid.uuid4().hex}")


def reports(
    settings: ChannelSettings, message: OutboundMessage, sent: SendResult, sent_at: datetime
) -> list[Report]:
    """The delivery reports that follow a send accepted by ``send``, in order."""
    kind = _kind(settings)
    channel_key = settings.routing_key()
    return [
        Report(
            after=after,
            event=StatusUpdate(
                platform=kind,
                channel_key=channel_key,
                external_id=sent.external_id,
                status=status,
                timestamp=sent_at + timedelta(seconds=after),
                recipient_id=message.to,
                platform_status=status,
            ),
        )
        for after, status in REPORTS[kind]
    ]
