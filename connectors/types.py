"""The shared vocabulary: the normalized events parsed from a webhook request
(``request``, re-exported here), and what goes out.

Events are frozen dataclasses. ``channel_key`` is the routing key of the
channel the event belongs to (WhatsApp ``phone_number_id``, Instagram account
id, the Twilio number), so one delivery carrying several channels can be split.
``external_id`` is always the platform's message id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .errors import ConnectorError, PayloadError, SendError, SignatureError
from .request import Headers, WebhookRequest

__all__ = [
    "Activity",
    "ChannelHealth",
    "ConnectorError",
    "Deletion",
    "DeliveryStatus",
    "Echo",
    "Headers",
    "InboundEvent",
    "InboundMessage",
    "LeadSubmission",
    "MessageEdit",
    "OutboundMessage",
    "PayloadError",
    "Reaction",
    "ReadReceipt",
    "SendError",
    "SendResult",
    "SignatureError",
    "StatusUpdate",
    "Unhandled",
    "Unreadable",
    "WebhookRequest",
]


@dataclass(frozen=True)
class InboundMessage:
    """A message a person sent to one of our channels.

    ``sender_id`` is the platform identity (WhatsApp ``wa_id``, Instagram-scoped
    id, the sender's number for SMS); ``sender_phone`` is E.164 when known;
    ``sender_user_id`` the platform's second id for the same person, where it has
    one (WhatsApp's business-scoped user id, the only id left when a user hides
    their number behind a username).
    ``content`` is the text, caption or a short description; ``attachments``
    hold media references (``type``, ``media_id`` or ``url``, ``mime_type``,
    ``caption``, ``filename``, ...); ``raw`` keeps platform fields worth
    keeping (location, shared contacts, button payloads, every Twilio field).
    ``external_id`` is None only for a generic message posted without an id,
    which then cannot be deduplicated.
    """

    platform: str
    channel_key: str | None
    sender_id: str
    external_id: str | None
    timestamp: datetime
    content: str
    content_type: str = "text"
    sender_name: str | None = None
    sender_phone: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None
    sender_user_id: str | None = None


DeliveryStatus = Literal["sent", "delivered", "read", "failed"]


@dataclass(frozen=True)
class StatusUpdate:
    """The platform's news about a message we sent.

    ``platform_status`` is the platform's own word (Twilio ``undelivered``
    becomes ``failed`` here, and stays ``undelivered`` there).
    """

    platform: str
    channel_key: str | None
    external_id: str
    status: DeliveryStatus
    timestamp: datetime
    recipient_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    platform_status: str | None = None


@dataclass(frozen=True)
class Reaction:
    """A person reacted to a message; ``emoji`` is None when the reaction was removed.

    ``by_business``: the business removed its own reaction from the platform's app,
    and ``sender_id`` names the customer it had reacted to."""

    platform: str
    channel_key: str | None
    sender_id: str
    target_id: str
    emoji: str | None
    timestamp: datetime
    external_id: str | None = None
    sender_name: str | None = None
    by_business: bool = False


@dataclass(frozen=True)
class Deletion:
    """A person deleted (unsent) a message they had sent us; with ``by_business``, the
    business deleted one it sent from the platform's app (``sender_id`` is then the
    customer it was sent to)."""

    platform: str
    channel_key: str | None
    sender_id: str
    target_id: str
    timestamp: datetime
    by_business: bool = False


@dataclass(frozen=True)
class ReadReceipt:
    """A person read our messages: the ones named, or all up to ``watermark``."""

    platform: str
    channel_key: str | None
    reader_id: str
    timestamp: datetime
    message_ids: tuple[str, ...] = ()
    watermark: datetime | None = None


@dataclass(frozen=True)
class Echo:
    """A message our own account sent, echoed back by the platform.

    The application matches it to the outbound message by ``external_id``;
    it must never be stored as a new inbound message.
    """

    platform: str
    channel_key: str | None
    external_id: str
    recipient_id: str
    timestamp: datetime
    content: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # The platform's message type when it says (``image``, ``order``); None: text
    # or attachment, by whether there are attachments.
    content_type: str | None = None


@dataclass(frozen=True)
class MessageEdit:
    """A person changed the text (or caption) of a message they had sent us; with
    ``by_business``, the business changed one it sent from the platform's app."""

    platform: str
    channel_key: str | None
    sender_id: str
    target_id: str
    content: str
    timestamp: datetime
    external_id: str | None = None
    by_business: bool = False


@dataclass(frozen=True)
class IdentityChange:
    """The person known by ``old_id`` is now known by ``new_id``: a changed number
    (``id_kind="id"``, both WhatsApp ``wa_id``) or a changed business-scoped user id
    (``id_kind="user_id"``). ``new_phone`` is the new number, E.164, when one is told.
    """

    platform: str
    channel_key: str | None
    old_id: str
    new_id: str
    timestamp: datetime
    external_id: str
    id_kind: Literal["id", "user_id"] = "id"
    new_phone: str | None = None


@dataclass(frozen=True)
class Activity:
    """Something a person did, or that happened to them, that is not a message: a call,
    opening the chat, a changed number. Shown in their conversation as an entry to
    read, never as a message waiting for an answer.

    ``kind`` names what happened (``call.missed``, ``chat.opened``, ...); ``summary``
    is the sentence an agent reads ("Missed call"). ``external_id`` is unique per
    activity (a call's id with the call event), so a retried delivery is recognized.
    ``data`` keeps the platform's details worth showing (direction, duration).
    """

    platform: str
    channel_key: str | None
    sender_id: str
    kind: str
    summary: str
    timestamp: datetime
    external_id: str
    data: dict[str, Any] = field(default_factory=dict)
    sender_name: str | None = None
    sender_phone: str | None = None


Health = Literal["ok", "restricted", "disabled"]


@dataclass(frozen=True)
class ChannelHealth:
    """The platform's news about the account behind a channel: a restriction, a ban, a
    reinstatement, a quality rating, a template's review.

    ``health`` is what it means for sending (None: worth recording, changes nothing);
    ``reason`` says why in words an admin reads. ``channel_key`` is None when the notice
    names only the account (``account_id``), and then concerns every channel of it.
    ``event`` is the platform's own word; ``data`` the notice as it came.
    """

    platform: str
    channel_key: str | None
    account_id: str | None
    field: str
    event: str
    health: Health | None
    reason: str | None
    # ``field`` names the platform's field here, so the dataclass helper is spelled out.
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Unhandled:
    """Something the platform reported that the application does not act on (yet):
    an account, template or call notification, a system notice.

    ``field`` is the platform's name for it (the webhook field, or ``messages.<type>``
    for a message kind); ``data`` is the part of the body it came in, kept whole so
    that a later handler has everything the platform said. ``account_id`` is the
    platform account the delivery named (WhatsApp Business Account id) when the part
    itself names no channel.
    """

    platform: str
    channel_key: str | None
    field: str
    where: str
    # ``field`` names the platform's field here, so the dataclass helper is spelled out.
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    account_id: str | None = None


@dataclass(frozen=True)
class Unreadable:
    """One part of a delivery that is not what the platform documents.

    Reported instead of refusing the whole delivery: the rest of it is still good,
    and a platform that is refused retries the same bytes for days.
    """

    platform: str
    channel_key: str | None
    where: str
    error: str


InboundEvent = (
    InboundMessage
    | StatusUpdate
    | Reaction
    | Deletion
    | ReadReceipt
    | Echo
    | MessageEdit
    | IdentityChange
    | Activity
    | ChannelHealth
    | Unhandled
    | Unreadable
)


@dataclass(frozen=True)
class LeadSubmission:
    """A lead posted by a web form; ``phone`` is E.164 when it could be read as one.

    ``extra`` keeps every other submitted field (UTM tags, page, ...) and the
    phone as typed when it could not be normalized.
    """

    name: str | None
    email: str | None
    phone: str | None
    company: str | None = None
    message: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    """A reply to send: ``to`` is the recipient's platform identity
    (``wa_id``, Instagram-scoped id, E.164 number); ``attachments`` carry a
    public ``url`` and optionally ``type`` (image/video/audio/document) and
    ``filename``."""

    to: str
    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # Where the platform should report delivery progress, on platforms that ask per send.
    status_callback: str | None = None
    # A filled WhatsApp template (``whatsapp_templates.fill``): sent instead of ``text``.
    template: dict[str, Any] | None = None
    # Ours, for a receiver that is not a platform (a generic channel's callback).
    message_id: int | None = None
    conversation_id: int | None = None


@dataclass(frozen=True)
class SendResult:
    """The platform accepted the message and gave it this id."""

    external_id: str
