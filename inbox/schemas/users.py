from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from .common import Input, Output, PageQuery
from .fields import Email

RoleName = Literal["viewer", "agent", "admin", "owner"]
Password = str


class UserCreate(Input):
    email: Email
    name: str = Field(default="", max_length=200)
    password: str = Field(min_length=8, max_length=256)
    role: RoleName = "agent"


class UserPatch(Input):
    name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, min_length=8, max_length=256)
    role: RoleName | None = None
    is_active: bool | None = None


class UserPublic(Output):
    id: int
    organization_id: int
    email: str
    name: str
    role: RoleName
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime


class UserQuery(PageQuery):
    role: RoleName | None = None
    active: bool | None = None
