from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .common import Input, Output
from .fields import JSON_BOUNDS, JsonObject

ChannelKind = Literal["whatsapp", "instagram", "sms", "generic"]
ChannelHealthState = Literal["ok", "restricted", "disabled"]


class ChannelCreate(Input):
    kind: ChannelKind
    name: str = Field(min_length=1, max_length=200)
    settings: JsonObject = Field(default_factory=dict)
    is_active: bool = True


class ChannelPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    settings: JsonObject | None = Field(
        default=None,
        description=f"Merged into the stored settings; omitted secrets are kept. {JSON_BOUNDS}",
    )
    is_active: bool | None = None


class ChannelPublic(Output):
    id: int
    organization_id: int
    kind: ChannelKind
    name: str
    routing_key: str | None
    settings: dict[str, Any] = Field(description="Non-secret settings only.")
    configured_secrets: list[str] = Field(description="Names of the secrets that are set.")
    is_active: bool
    health: ChannelHealthState = Field(
        description="What the platform last said about the account behind the channel: "
        "ok, restricted (it may limit sending), or disabled (replies fail at once)."
    )
    health_reason: str | None = Field(description="The platform's reason, in words.")
    health_changed_at: datetime | None
    created_at: datetime
    updated_at: datetime
