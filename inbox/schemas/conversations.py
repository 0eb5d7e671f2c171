from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .common import Input, Output, PageQuery
from .fields import MAX_BIG_ID, Id, Tag
from .templates import TemplateSend

ConversationStatus = Literal["open", "pending", "snoozed", "closed"]
MessageDirection = Literal["inbound", "outbound"]
MessageStatus = Literal["received", "queued", "sent", "delivered", "read", "failed"]


class ContactRef(Output):
    id: int
    name: str | None


class ChannelRef(Output):
    id: int
    kind: str
    name: str


class LastMessage(Output):
    preview: str | None
    at: datetime | None


class ConversationPublic(Output):
    id: int
    organization_id: int
    status: ConversationStatus
    contact_id: int
    contact: ContactRef
    channel_id: int
    channel: ChannelRef
    assignee_id: int | None
    labels: list[str]
    unread_count: int
    last_message_at: datetime | None
    last_message: LastMessage
    first_response_seconds: float | None
    snoozed_until: datetime | None = Field(
        default=None, description="While snoozed: when it reopens by itself."
    )
    reply_window_expires_at: datetime | None = Field(
        default=None,
        description="When the platform stops taking free-form replies (WhatsApp and "
        "Instagram: 24 h after the customer's last message; in the past once closed). "
        "null where the platform has no window (SMS, generic).",
    )
    created_at: datetime
    updated_at: datetime


MAX_LABELS = 50
MAX_SNOOZE = timedelta(days=366)


class ConversationPatch(Input):
    status: ConversationStatus | None = None
    assignee_id: Id | None = Field(default=None, description="null unassigns.")
    labels: list[Tag] | None = Field(default=None, max_length=MAX_LABELS)
    snoozed_until: datetime | None = Field(
        default=None,
        description="With status 'snoozed' (and only then): when it reopens, in the "
        "future and within a year, with a time zone.",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(labels)) if labels is not None else None

    @field_validator("snoozed_until")
    @classmethod
    def _snoozed_until(cls, at: datetime | None) -> datetime | None:
        if at is None:
            return None
        if at.tzinfo is None:
            # A time without a zone means a different moment to every agent's browser.
            raise ValueError("needs a time zone, e.g. 2030-01-31T09:00:00Z")
        at = at.astimezone(UTC)
        now = datetime.now(UTC)
        if at <= now:
            raise ValueError("must be in the future")
        if at > now + MAX_SNOOZE:
            raise ValueError("must be within a year from now")
        return at


class LabelsChange(Input):
    add: list[Tag] = Field(default_factory=list, max_length=MAX_LABELS)
    remove: list[Tag] = Field(default_factory=list, max_length=MAX_LABELS)


ConversationView = Literal["mine", "unassigned", "all"]


class ConversationQuery(PageQuery):
    view: ConversationView | None = Field(
        default=None,
        description="'mine': assigned to the caller; 'unassigned'; 'all'. "
        "The same as assignee=me / assignee=none / neither.",
    )
    status: ConversationStatus | None = None
    assignee_id: Id | None = None
    assignee: Literal["me", "none"] | None = Field(
        default=None, description="'me': assigned to the caller; 'none': unassigned."
    )
    channel_id: Id | None = None
    contact_id: Id | None = None
    unread: bool | None = None
    label: str | None = Field(default=None, max_length=64)
    q: str | None = Field(
        default=None,
        max_length=200,
        description="Text in the contact's name, phone or email, or in a message.",
    )
    cursor: str | None = Field(
        default=None,
        max_length=200,
        description="The next page: pagination.next_cursor of the page before.",
    )


class ConversationPagination(Output):
    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class ConversationPage(Output):
    data: list[ConversationPublic]
    pagination: ConversationPagination


class MessagePublic(Output):
    id: int
    conversation_id: int
    channel_id: int
    direction: MessageDirection
    sender_contact_id: int | None
    sender_user_id: int | None
    content: str | None
    content_type: str
    attachments: list[dict[str, Any]]
    platform_data: dict[str, Any]
    reply_to: str | None
    private: bool
    external_id: str | None
    status: MessageStatus
    error_code: str | None
    error: str | None
    platform_timestamp: datetime | None
    created_at: datetime
    ordered_at: datetime


class MessageQuery(Input):
    before: int | None = Field(
        default=None, ge=1, le=MAX_BIG_ID, description="Messages older than this id."
    )
    after: int | None = Field(
        default=None, ge=0, le=MAX_BIG_ID, description="Messages newer than this id."
    )
    limit: int = Field(default=50, ge=1, le=200)

    model_config = Input.model_config | {"extra": "ignore"}

    @model_validator(mode="after")
    def _one_cursor(self) -> MessageQuery:
        if self.before is not None and self.after is not None:
            raise ValueError("use either before or after, not both")
        return self


class CursorPagination(Output):
    total: int
    limit: int
    has_more: bool
    before: int | None = Field(description="Pass as ?before= for older messages.")
    after: int | None = Field(description="Pass as ?after= for newer messages.")


class MessagePage(Output):
    data: list[MessagePublic]
    pagination: CursorPagination


class Attachment(Input):
    url: str | None = Field(default=None, min_length=8, max_length=2000, pattern=r"^https?://")
    media_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="A file uploaded with POST /api/media (its type and name come with it); "
        "sent from the service's public URL, so INBOX_PUBLIC_URL must be set.",
    )
    type: Literal["image", "video", "audio", "document"] = "document"
    filename: str | None = Field(default=None, max_length=255)
    caption: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        if (self.url is None) == (self.media_id is None):
            raise ValueError("an attachment has either a url or a media_id")
        return self


class ReplyCreate(Input):
    content: str = Field(default="", max_length=4096)
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)
    private: bool = Field(
        default=False, description="An internal note: stored and shown, never sent."
    )
    template: TemplateSend | None = Field(
        default=None,
        description="A WhatsApp template (synced, APPROVED) instead of content: what "
        "reaches a customer whose reply window has closed. Stored with its text filled in.",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> ReplyCreate:
        if self.template is not None:
            if self.content.strip() or self.attachments or self.private:
                raise ValueError("a template goes alone: no content, attachments or private")
            return self
        if not self.content.strip() and not self.attachments:
            raise ValueError("a message needs content or an attachment")
        return self
