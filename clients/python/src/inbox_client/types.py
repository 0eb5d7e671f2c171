"""The shapes of the service's JSON, as the OpenAPI document at /openapi.json declares them.

Answers stay plain dicts (nothing is copied or validated on the way in); these types are
for the reader and the type checker. Timestamps are ISO-8601 strings ending in ``Z``.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

T = TypeVar("T")

ConversationStatus = Literal["open", "pending", "snoozed", "closed"]
ContactStatus = Literal["lead", "customer", "active", "archived"]
LeadStatus = Literal["new", "contacted", "qualified", "converted", "lost"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class Pagination(TypedDict):
    total: int
    limit: int
    offset: int
    has_more: bool


class Page(TypedDict, Generic[T]):
    data: list[T]
    pagination: Pagination


class ConversationPagination(Pagination):
    # Pass back as ``cursor=`` for the next page.
    next_cursor: str | None


class Conversation(TypedDict):
    id: int
    organization_id: int
    status: ConversationStatus
    contact_id: int
    contact: dict[str, Any]
    channel_id: int
    channel: dict[str, Any]
    assignee_id: int | None
    labels: list[str]
    unread_count: int
    last_message_at: str | None
    last_message: dict[str, Any] | None
    first_response_seconds: float | None
    snoozed_until: NotRequired[str | None]
    reply_window_expires_at: NotRequired[str | None]
    created_at: str
    updated_at: str


class ConversationPage(TypedDict):
    data: list[Conversation]
    pagination: ConversationPagination


class MessagePagination(TypedDict):
    total: int
    limit: int
    has_more: bool
    # Pass back as ``before=`` (older) or ``after=`` (newer).
    before: int | None
    after: int | None


class Message(TypedDict):
    id: int
    conversation_id: int
    channel_id: int
    direction: Literal["inbound", "outbound"]
    sender_contact_id: int | None
    sender_user_id: int | None
    content: str | None
    content_type: str
    attachments: list[dict[str, Any]]
    platform_data: dict[str, Any]
    reply_to: str | None
    private: bool
    external_id: str | None
    status: Literal["received", "queued", "sent", "delivered", "read", "failed"]
    error_code: str | None
    error: str | None
    platform_timestamp: str | None
    created_at: str
    ordered_at: str


class MessagePage(TypedDict):
    data: list[Message]
    pagination: MessagePagination


class ContactFields(TypedDict, total=False):
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    position: str | None
    tags: list[str]
    status: ContactStatus
    custom_fields: dict[str, Any]
    notes: str | None


class Contact(TypedDict):
    id: int
    organization_id: int
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    position: str | None
    tags: list[str]
    status: ContactStatus
    custom_fields: dict[str, Any]
    notes: str | None
    created_at: str
    updated_at: str


class ContactDetail(Contact):
    identities: list[dict[str, Any]]
    leads: list[Lead]
    conversations: list[dict[str, Any]]


class LeadFields(TypedDict, total=False):
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    status: LeadStatus
    source: str | None
    value: float | str | None
    notes: str | None
    contact_id: int | None


class Lead(TypedDict):
    id: int
    organization_id: int
    contact_id: int | None
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    status: LeadStatus
    source: str | None
    value: float | None
    notes: str | None
    converted_at: str | None
    created_at: str
    updated_at: str


class WebhookFields(TypedDict, total=False):
    url: str
    # Event types, or ["*"] for all.
    events: list[str]
    description: str
    active: bool


class Webhook(TypedDict):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    disabled_reason: str | None
    disabled_at: str | None
    last_success_at: str | None
    previous_secret_expires_at: str | None
    created_at: str
    updated_at: str


class WebhookWithSecret(Webhook):
    # ``whsec_<base64>``: shown once, at creation and rotation.
    secret: str


class WebhookDelivery(TypedDict):
    id: int
    webhook_id: int
    event_id: int | None
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    finished_at: str | None
    attempt_log: list[dict[str, Any]]


class DeliveryPage(TypedDict):
    data: list[WebhookDelivery]
    # Pass back as ``before=`` for older deliveries.
    next_cursor: int | None


class Event(TypedDict):
    """One frame of the event stream. Stored events carry an ``id`` (what resuming is
    counted in); live-only ones (``typing``, ``metrics.update``...) do not."""

    type: str
    id: NotRequired[int]
    organization_id: NotRequired[int]
    timestamp: NotRequired[str]
    data: NotRequired[Any]
