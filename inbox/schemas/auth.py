from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from .common import Input, Output
from .fields import Id
from .users import RoleName, UserPublic


class LoginRequest(Input):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class TokenResponse(Output):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int
    user: UserPublic


class LoginResponse(TokenResponse):
    refresh_token: str = Field(
        description="Opaque; POST it to /api/auth/refresh for a new access token and the next "
        "refresh token. Each works once: presenting a spent one ends the whole session."
    )
    refresh_expires_in: int = Field(
        description="Seconds until this refresh token lapses unused (INBOX_REFRESH_TTL, never "
        "past session_expires_at)"
    )
    session_expires_at: datetime = Field(
        description="When the session ends whatever its use (INBOX_REFRESH_MAX after login)"
    )


class RefreshRequest(Input):
    refresh_token: str = Field(min_length=1, max_length=200)


class OrganizationPublic(Output):
    id: int
    name: str
    lead_form_key: str | None = Field(
        description="Publishable key for POST /webhooks/leads/incoming?key=...; it can only "
        "create leads. Null until an admin creates one."
    )
    timezone: str = Field(
        description='IANA zone of "today" in metrics.update and of the analytics\' days'
    )
    created_at: datetime


class OrganizationPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description='An IANA zone name (Europe/Berlin): where "today" and the analytics\' '
        "days begin.",
    )


class MeResponse(Output):
    user: UserPublic | None
    organization: OrganizationPublic
    role: RoleName
    api_key_id: int | None = None


class PasswordChange(Input):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


ScopeName = Literal["api", "ingest"]


def _default_scopes() -> list[ScopeName]:
    return ["api"]


class ApiKeyCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["viewer", "agent", "admin"] = "agent"
    scopes: list[ScopeName] = Field(
        default_factory=_default_scopes,
        min_length=1,
        max_length=2,
        description='"api": the REST API and /ws; "ingest": POST /webhooks/messages/incoming '
        "(the only credential it takes). Default: api.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working; never when left out."
    )


class ApiKeyPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    owner_id: Id | None = Field(
        default=None,
        description="Transfer the key to another active admin or owner: a key stops while "
        "its owner is deactivated.",
    )


ApiKeyStatus = Literal["active", "expired", "suspended"]


class ApiKeyPublic(Output):
    id: int
    name: str
    role: str
    prefix: str
    scopes: list[ScopeName]
    created_at: datetime
    created_by_id: int | None = Field(description="The user who made it; null from the CLI")
    owner_id: int | None = Field(
        description="The user it acts for; it stops while they are deactivated (suspended)"
    )
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    status: ApiKeyStatus


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="Shown once: store it now.")
