"""Outgoing webhooks: endpoints, their deliveries and the attempts of each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from connectors.safe_urls import MAX_URL_LENGTH, UnsafeUrl, check_url

from .common import Input, Output


def _url(value: str) -> str:
    try:
        return check_url(value)
    except UnsafeUrl as exc:
        raise ValueError(str(exc)) from None


def _events(value: list[str]) -> list[str]:
    if "*" in value and len(value) > 1:
        raise ValueError('"*" stands for every event and goes alone')
    return sorted(set(value))


WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where events are POSTed: http(s), resolving to a public address.",
        examples=["https://crm.example.com/hooks/inbox"],
    ),
    AfterValidator(_url),
]
EventNames = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^(\*|[a-z_]+\.[a-z_]+)$")]],
    Field(
        min_length=1,
        max_length=50,
        description='Event types to send (`message.received`, ...), or `["*"]` for all.',
        examples=[["message.received", "conversation.updated"]],
    ),
    AfterValidator(_events),
]


class WebhookCreate(Input):
    url: WebhookUrl
    events: EventNames
    description: str = Field(default="", max_length=500)
    active: bool = True


class WebhookPatch(Input):
    url: WebhookUrl | None = None
    events: EventNames | None = None
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = Field(
        default=None, description="true turns a disabled endpoint back on, where it left off."
    )


class WebhookPublic(Output):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    last_success_at: datetime | None
    # Until then the replaced secret signs too.
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookPublic):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, `whsec_...`): shown this once."
    )


class WebhookAttemptPublic(Output):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None = Field(description="The first KiB of the answer.")


DeliveryStatus = Literal["pending", "succeeded", "failed"]


class WebhookDeliveryPublic(Output):
    id: int
    webhook_id: int
    event_id: int | None
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[WebhookAttemptPublic] = Field(description="Every attempt, oldest first.")


class DeliveryQuery(Input):
    status: DeliveryStatus | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: int | None = Field(
        default=None, ge=1, description="Cursor: deliveries older than this id (`next_cursor`)."
    )


class DeliveryPage(Output):
    data: list[WebhookDeliveryPublic]
    next_cursor: int | None = Field(
        description="Pass as `before` for the next page; null at the end."
    )


class WebhookDisabled(Output):
    """Sent to every agent's socket: no URL, which is the admins' to see (it may carry a
    token in its query)."""

    id: int
    description: str
    reason: str
