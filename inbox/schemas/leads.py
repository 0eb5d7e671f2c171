from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from .common import Input, Order, Output, PageQuery
from .fields import Id, LongText, Money, Name, OptionalEmail, OptionalPhone, ShortText

LeadStatus = Literal["new", "contacted", "qualified", "converted", "lost"]


class LeadFields(Input):
    name: Name | None = None
    email: OptionalEmail = None
    phone: OptionalPhone = None
    company: ShortText | None = None
    status: LeadStatus = "new"
    source: str | None = Field(default=None, max_length=64)
    value: Money | None = None
    notes: LongText | None = None
    contact_id: Id | None = None


class LeadCreate(LeadFields):
    @model_validator(mode="after")
    def _name_or_email(self) -> LeadCreate:
        if not self.name and not self.email:
            raise ValueError("a lead needs a name or an email")
        return self


class LeadReplace(LeadCreate):
    """PUT: the whole lead; omitted fields take their defaults."""


class LeadPatch(Input):
    name: Name | None = None
    email: OptionalEmail = None
    phone: OptionalPhone = None
    company: ShortText | None = None
    status: LeadStatus | None = None
    source: str | None = Field(default=None, max_length=64)
    value: Money | None = None
    notes: LongText | None = None
    contact_id: Id | None = None


class LeadPublic(Output):
    id: int
    organization_id: int
    contact_id: int | None
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    status: LeadStatus
    source: str | None
    value: Money | None
    notes: str | None
    converted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class LeadQuery(PageQuery):
    status: LeadStatus | None = None
    contact_id: Id | None = Field(default=None, description="The leads of one contact.")
    source: str | None = Field(default=None, max_length=64)
    q: str | None = Field(
        default=None, max_length=200, description="Search name, email, phone, company."
    )
    sort: Literal["created_at", "updated_at", "name", "value", "status"] = "created_at"
    order: Order = "desc"
