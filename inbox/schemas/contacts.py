from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from .common import Input, Order, Output, PageQuery
from .fields import JsonObject, LongText, Name, OptionalEmail, OptionalPhone, ShortText, Tag
from .leads import LeadPublic

ContactStatus = Literal["lead", "customer", "active", "archived"]
Tags = list[Tag]
CustomFields = JsonObject


def _dedupe(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


class ContactCreate(Input):
    name: Name | None = None
    email: OptionalEmail = None
    phone: OptionalPhone = None
    company: ShortText | None = None
    position: ShortText | None = None
    tags: Tags = Field(default_factory=list, max_length=50)
    status: ContactStatus = "lead"
    custom_fields: CustomFields = Field(default_factory=dict, max_length=100)
    notes: LongText | None = None

    _tags = field_validator("tags")(_dedupe)


class ContactPatch(Input):
    name: Name | None = None
    email: OptionalEmail = None
    phone: OptionalPhone = None
    company: ShortText | None = None
    position: ShortText | None = None
    tags: Tags | None = Field(default=None, max_length=50)
    status: ContactStatus | None = None
    custom_fields: CustomFields | None = Field(default=None, max_length=100)
    notes: LongText | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return _dedupe(tags) if tags is not None else None


class ContactPublic(Output):
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
    created_at: datetime
    updated_at: datetime


class IdentityPublic(Output):
    kind: str
    external_id: str
    # The name the platform gives for it now, and the ones it gave before.
    profile_name: str | None = None
    former_names: list[dict[str, Any]] = []
    user_id: str | None = None
    # Set on a former identity: the person moved to another number.
    replaced_at: datetime | None = None


class ContactConversation(Output):
    id: int
    channel_id: int
    channel_kind: str
    status: str
    unread_count: int
    last_message_at: datetime | None
    last_message_preview: str | None


class ContactDetail(ContactPublic):
    identities: list[IdentityPublic]
    leads: list[LeadPublic]
    conversations: list[ContactConversation]


class ContactQuery(PageQuery):
    search: str | None = Field(
        default=None, max_length=200, description="Name, email, phone or company."
    )
    tags: str | None = Field(
        default=None, max_length=500, description="Comma-separated; a contact must carry every one."
    )
    status: ContactStatus | None = None
    sort: Literal["created_at", "updated_at", "name", "email", "company"] = "created_at"
    order: Order = "desc"

    def tag_list(self) -> list[str]:
        return [t.strip() for t in (self.tags or "").split(",") if t.strip()]
