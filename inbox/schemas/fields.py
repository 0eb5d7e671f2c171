"""Field types shared by the API schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, BeforeValidator, EmailStr, Field, PlainSerializer


def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(
            "must be a phone number in international format, e.g. +15550123456"
        ) from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _lower_email(value: str) -> str:
    return value.lower()


# Row ids are 32-bit on PostgreSQL and 64-bit on SQLite; a larger number names no row,
# and the drivers reject it instead of finding nothing, so it is refused up front.
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1  # messages and events
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

Phone = Annotated[str, Field(max_length=40), AfterValidator(_e164)]
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(_lower_email)]
OptionalEmail = Annotated[Email | None, BeforeValidator(_blank_to_none)]
OptionalPhone = Annotated[Phone | None, BeforeValidator(_blank_to_none)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ShortText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=20_000)]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^,\s][^,]*$")]
Money = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("999999999999.99"), decimal_places=2),
    PlainSerializer(float, return_type=float, when_used="json"),
]
