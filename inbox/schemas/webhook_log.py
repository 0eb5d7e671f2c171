"""Recorded webhook requests, and replaying one."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .common import Input, Output

Outcome = Literal[
    "stored",
    "duplicate",
    "ignored",
    "unknown_channel",
    "bad_signature",
    "malformed",
    "failed",
]
Kind = Literal["whatsapp", "instagram", "sms", "generic", "lead_form"]


class WebhookLogQuery(Input):
    outcome: Outcome | None = None
    kind: Kind | None = None
    channel_id: int | None = Field(default=None, ge=1)
    limit: int = Field(default=50, ge=1, le=200)
    before: int | None = Field(
        default=None, ge=1, description="Cursor: records older than this id (`next_cursor`)."
    )


class WebhookRecordPublic(Output):
    id: int
    kind: str
    channel_id: int | None
    received_at: datetime
    method: str
    url: str
    headers: list[list[str]] = Field(description="[name, value] pairs; credentials left out")
    body: str
    body_encoding: Literal["text", "base64"]
    outcome: str
    status: int
    error: str | None
    replay_of: int | None


class WebhookLogPage(Output):
    data: list[WebhookRecordPublic]
    next_cursor: int | None = Field(
        description="Pass as `before` for the next page; null at the end."
    )


class ReplayResult(Output):
    replay_of: int
    outcome: str
    status: int = Field(description="The status the route answered the replay with")
    answer: Any = Field(description="The route's answer body (JSON, or text)")
    record_id: int | None = Field(description="The replay's own record; null with the archive off")
