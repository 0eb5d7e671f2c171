"""Text every database can hold: what PostgreSQL refuses is replaced before storing.

PostgreSQL's ``text`` cannot hold U+0000, its ``jsonb`` refuses the escape
``\\u0000``, and neither holds a lone surrogate (a code point UTF-8 cannot
encode). A platform that sends one would get an error on every retry and keep
retrying for days, while SQLite would have stored the message. Each of them
becomes U+FFFD, the replacement character, on both databases alike, so a
message reads the same wherever it is stored and a retry of the delivery still
finds it stored (its ids are replaced the same way).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import orjson

from connectors.types import InboundEvent

__all__ = ["MAX_DEPTH", "REPLACEMENT", "TOO_DEEP", "storable", "storable_events", "storable_text"]

REPLACEMENT = "\ufffd"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

T = TypeVar("T")

# Platform objects are copied into a message's data as they came. An event must fit
# in a frame (orjson encodes at most 254 levels) with the envelope around it: deeper
# platform data is cut here, so the delivery is stored rather than refused forever.
MAX_DEPTH = 64
TOO_DEEP = "[nested too deep]"
# The levels the envelope and a message's own fields add around platform data.
_ENVELOPE_LEVELS = 8


def storable_text(text: str) -> str:
    """``text`` with every NUL and lone surrogate replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable(value: T, depth: int = 0) -> T:
    """``value`` with every string in it made storable, through dicts (keys too),
    lists and tuples; anything else is returned as it is. Unchanged strings and
    containers are returned themselves, not copied. A container nested deeper than
    ``MAX_DEPTH`` becomes ``TOO_DEEP``, so that the event still fits in a frame."""
    # Of value's own type but for a container cut to TOO_DEEP, which only platform
    # data (typed Any) is nested deep enough to meet.
    return cast(T, _storable(value, depth))


def _storable(value: object, depth: int) -> object:
    if isinstance(value, str):
        return storable_text(value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        items = [(_storable(k, 0), _storable(v, depth + 1)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        cleaned = [_storable(v, depth + 1) for v in value]
        if all(c is v for c, v in zip(cleaned, value, strict=True)):
            return value
        return tuple(cleaned) if isinstance(value, tuple) else cleaned
    return value


def _may_hold_unstorable(events: Sequence[InboundEvent]) -> bool:
    """False only when no string anywhere in ``events`` needs replacing.

    One serialization in C instead of a walk in Python, for the clean arrivals that
    are nearly all of them: orjson refuses a lone surrogate and writes NUL as
    ``\\u0000``. Anything it cannot serialize, and a text that spells out
    ``\\u0000`` itself, just take the careful path.
    """
    try:
        # Wrapped as deep as an envelope will wrap it: data too deep to send fails here.
        wrapped: Any = events
        for _ in range(_ENVELOPE_LEVELS):
            wrapped = [wrapped]
        serialized = orjson.dumps(wrapped)
    except TypeError:
        return True
    return b"\\u0000" in serialized


def _storable_event(event: InboundEvent) -> InboundEvent:
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        cleaned = storable(value)
        if cleaned is not value:
            changes[field.name] = cleaned
    return dataclasses.replace(event, **changes) if changes else event


def storable_events(events: Sequence[InboundEvent]) -> Sequence[InboundEvent]:
    """``events`` with every string storable on both databases; the same sequence
    when nothing needed replacing (nearly always)."""
    if not _may_hold_unstorable(events):
        return events
    return [_storable_event(event) for event in events]
