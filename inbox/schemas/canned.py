"""Canned responses: what an admin writes once and an agent inserts by short code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from .common import Input, Output, PageQuery

SHORT_CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


def _lower(value: Any) -> Any:
    # "/Greet" and "/greet" are one code to an agent typing it.
    return value.strip().lower() if isinstance(value, str) else value


ShortCode = Annotated[
    str,
    BeforeValidator(_lower),
    Field(
        min_length=1,
        max_length=64,
        pattern=SHORT_CODE_PATTERN,
        description="What an agent types after `/`: letters, digits, `-` and `_`; "
        "stored lower-case.",
        examples=["greeting"],
    ),
]
CannedContent = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4000,
        description="The text inserted; may hold `{{contact.name}}` and `{{agent.name}}`.",
        examples=["Hi {{contact.name}}, this is {{agent.name}}. How can I help?"],
    ),
]


class CannedResponseCreate(Input):
    short_code: ShortCode
    content: CannedContent


class CannedResponsePatch(Input):
    short_code: ShortCode | None = None
    content: CannedContent | None = None


class CannedResponsePublic(Output):
    id: int
    short_code: str
    content: str
    created_at: datetime
    updated_at: datetime


class CannedResponseQuery(PageQuery):
    q: str | None = Field(
        default=None, max_length=200, description="Search short codes and content."
    )
