"""Field types shared by the API schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import AfterValidator, BeforeValidator, EmailStr, Field, PlainSerializer
from pydantic_core import PydanticCustomError

from connectors.phones import ImpossibleNumber, NotAPhoneNumber, parse_e164

T = TypeVar("T")


def _e164(value: str) -> str:
    try:
        return parse_e164(value)
    except NotAPhoneNumber:
        raise ValueError(
            "must be a phone number in international format, e.g. +15550123456"
        ) from None
    except ImpossibleNumber:
        raise ValueError("is not a possible phone number") from None


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


# Free-form JSON a client may store (custom fields, channel settings). Every such value
# goes on into the events that describe the change and so into WebSocket frames, which
# orjson refuses past 254 levels; a value deep or large enough to matter to no form is
# refused up front instead, as the field's own error.
MAX_JSON_DEPTH = 16
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_KEY_LENGTH = 256


def _too_deep() -> PydanticCustomError:
    return PydanticCustomError(
        "json_too_deep", "nested deeper than {max_depth} levels", {"max_depth": MAX_JSON_DEPTH}
    )


def bounded_json(value: T) -> T:
    """``value`` if it is at most MAX_JSON_DEPTH levels of objects and arrays (its own
    level included), MAX_JSON_BYTES as JSON, with keys of MAX_JSON_KEY_LENGTH at most."""
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        if "recursion" in str(exc).lower():
            # Nested past orjson's own limit, far past ours.
            raise _too_deep() from None
        raise PydanticCustomError(
            "json_invalid", "cannot be written as JSON: {reason}", {"reason": str(exc)}
        ) from None
    if size > MAX_JSON_BYTES:
        raise PydanticCustomError(
            "json_too_large",
            "larger than {max_kib} KiB as JSON",
            {"max_kib": MAX_JSON_BYTES // 1024},
        )
    # A loop, not recursion: the value is at most MAX_JSON_BYTES here, but its depth is
    # not yet known and Python's stack is not the place to find out.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(item, dict):
            for key, child in item.items():
                if len(key) > MAX_JSON_KEY_LENGTH:
                    raise PydanticCustomError(
                        "json_key_too_long",
                        "has a key longer than {max_length} characters",
                        {"max_length": MAX_JSON_KEY_LENGTH},
                    )
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
    return value


JSON_BOUNDS = (
    f"At most {MAX_JSON_DEPTH} levels of objects and arrays, {MAX_JSON_BYTES // 1024} KiB "
    f"as JSON, keys of at most {MAX_JSON_KEY_LENGTH} characters."
)
# Every free-form object the API accepts is one of these.
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(bounded_json),
    Field(description=f"Free-form JSON. {JSON_BOUNDS}"),
]
