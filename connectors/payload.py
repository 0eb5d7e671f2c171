"""Reading untrusted bodies: every helper either returns the documented type or
raises PayloadError naming where the body went wrong, so the parsers built on
them cannot fail any other way."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError

from .errors import PayloadError

# Platform type names become our content_type: a short lower-case identifier.
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")

# Anything later than this is not a message timestamp but garbage or an attack.
_MAX_UNIX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


def load_json(body: bytes) -> Any:
    """The JSON value of ``body``; invalid UTF-8, bad syntax, out-of-range
    integers and excessive nesting are all PayloadError (orjson rejects them).

    A lone surrogate escape (``"\\ud800"``) is valid JSON that orjson refuses; such
    a body is read by the standard library instead, within the same limits, and the
    application decides what to store for the unpaired code point.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise PayloadError(f"body is not valid JSON ({exc})") from None
    try:
        # Decoded strictly first: given bytes, json.loads would let encoded surrogates
        # (invalid UTF-8) through.
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_int=_int64)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"body is not valid JSON ({exc})") from None


# orjson's limits, kept by the fallback: no NaN or Infinity, integers within 64 bits.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int64(text: str) -> int:
    if len(text) > 21 or not _INT_MIN <= (value := int(text)) <= _INT_MAX:
        raise ValueError("integer out of range")
    return value


def load_json_object(body: bytes) -> dict[str, Any]:
    return as_object(load_json(body), "body")


def load_form(body: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of an ``application/x-www-form-urlencoded`` body, in order."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("form body is not valid UTF-8") from None
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("form body is not valid URL-encoded UTF-8") from None


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError("expected an object", where)
    return value


def opt_object(value: Any, where: str) -> dict[str, Any] | None:
    return None if value is None else as_object(value, where)


def as_list(value: Any, where: str) -> list[Any]:
    """A list; a missing value is an empty list (platforms omit empty arrays)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError("expected an array", where)
    return value


def as_str(value: Any, where: str) -> str:
    """A non-empty string; ids sent as numbers are accepted as their decimal text."""
    text = opt_str(value, where)
    if text is None or not text:
        raise PayloadError("expected a non-empty string", where)
    return text


def opt_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PayloadError("expected a string", where)


def opt_bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise PayloadError("expected a boolean", where)
    return value


def opt_number(value: Any, where: str) -> float | None:
    """A finite number, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError("expected a number", where)
    number = float(value)
    if not math.isfinite(number):
        raise PayloadError("expected a finite number", where)
    return number


def unix_time(value: Any, where: str, *, millis: bool = False) -> datetime:
    """A UTC datetime from Unix time in seconds (or milliseconds), given as a
    number or as a string of digits (WhatsApp sends ``"1749416383"``)."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 20:
            raise PayloadError("expected a Unix timestamp", where)
        number: float = int(text)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    else:
        raise PayloadError("expected a Unix timestamp", where)
    if isinstance(number, float) and not math.isfinite(number):
        raise PayloadError("expected a Unix timestamp", where)
    # Range-check before dividing: a huge integer would overflow the float division.
    limit = _MAX_UNIX_SECONDS * 1000 if millis else _MAX_UNIX_SECONDS
    if not 0 <= number <= limit:
        raise PayloadError("timestamp out of range", where)
    return datetime.fromtimestamp(number / 1000 if millis else number, UTC)


def type_name(value: str | None) -> str:
    """``value`` when it is a short lower-case identifier, else ``"unknown"``."""
    return value if value is not None and _TYPE_NAME.fullmatch(value) else "unknown"


def validation_error(exc: ValidationError) -> PayloadError:
    """One PayloadError listing every invalid field, named as the client sent it."""
    details: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        details.setdefault(field, error["msg"])
    summary = "; ".join(f"{field}: {message}" for field, message in details.items())
    return PayloadError(f"invalid body: {summary}", details=details)
