from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from .common import Input, Output
from .users import RoleName, UserPublic


class LoginRequest(Input):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class TokenResponse(Output):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int
    user: UserPublic


class OrganizationPublic(Output):
    id: int
    name: str
    lead_form_key: str | None = Field(
        description="Publishable key for POST /webhooks/leads/incoming?key=...; it can only "
        "create leads. Null until an admin creates one."
    )
    created_at: datetime


class OrganizationPatch(Input):
    name: str = Field(min_length=1, max_length=200)


class MeResponse(Output):
    user: UserPublic | None
    organization: OrganizationPublic
    role: RoleName
    api_key_id: int | None = None


class ApiKeyCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["agent", "admin"] = "agent"


class ApiKeyPublic(Output):
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="Shown once: store it now.")
