"""Frames a client may send, and the control frames the server answers with."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard, TypeVar

import orjson

from .envelope import Envelope, control

MAX_FILTER_ITEMS = 1000
MAX_EVENT_TYPE_LENGTH = 64
# An error frame names this many unknown event types at most: a client may send a thousand.
MAX_NAMED_UNKNOWN = 10

UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
EVENT_UNREADABLE = "EVENT_UNREADABLE"


class FrameError(Exception):
    """A client frame that cannot be honoured; answered with an `error` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Subscribe:
    events: frozenset[str] | None
    conversation_ids: frozenset[int] | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    events: frozenset[str] | None
    conversation_ids: frozenset[int] | None


@dataclass(frozen=True, slots=True)
class Typing:
    """`typing` in a conversation, or `viewing` it: the sender has it open (repeated
    while it stays open)."""

    conversation_id: int
    kind: Literal["typing", "viewing"] = "typing"


ClientFrame = Ping | Subscribe | Unsubscribe | Typing


def parse_client_frame(text: str) -> ClientFrame:
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("INVALID_JSON", "frame is not valid JSON") from None
    if not isinstance(body, dict):
        raise FrameError("INVALID_FRAME", "frame must be a JSON object")
    kind = body.get("type")
    if kind == "ping":
        return Ping()
    if kind == "subscribe":
        return Subscribe(_event_types(body), _conversation_ids(body))
    if kind == "unsubscribe":
        return Unsubscribe(_event_types(body), _conversation_ids(body))
    if kind in ("typing", "viewing"):
        conversation_id = body.get("conversation_id")
        if not _is_id(conversation_id):
            raise FrameError("INVALID_FRAME", "'conversation_id' must be a positive integer")
        return Typing(conversation_id, "typing" if kind == "typing" else "viewing")
    if not isinstance(kind, str):
        raise FrameError("INVALID_FRAME", "frame needs a string 'type'")
    raise FrameError("UNKNOWN_TYPE", f"unknown frame type {kind[:64]!r}")


def parse_event_types(value: str) -> frozenset[str]:
    """The `?events=a,b` query parameter."""
    return _checked_event_types([item.strip() for item in value.split(",") if item.strip()])


T = TypeVar("T")


def narrow(current: frozenset[T] | None, items: frozenset[T] | None) -> frozenset[T] | None:
    """`subscribe`: add to the narrowing; a dimension that had everything gets just these."""
    if items is None:
        return current
    return items if current is None else current | items


def widen(current: frozenset[T] | None, items: frozenset[T] | None) -> frozenset[T] | None:
    """`unsubscribe`: undo narrowing; once nothing is left, the dimension has everything."""
    if items is None or current is None:
        return current
    return (current - items) or None


# Server → client control frames. They carry a type and no id.

PONG = control("pong")
REPLAY_TRUNCATED = control("replay.truncated")


def session_ready(
    connection_id: str, user: Mapping[str, Any], organization_id: int, last_event_id: int
) -> Envelope:
    return control(
        "session.ready",
        {
            "connection_id": connection_id,
            "user": user,
            "organization_id": organization_id,
            "last_event_id": last_event_id,
        },
    )


def error(code: str, message: str) -> Envelope:
    return control("error", {"code": code, "message": message})


def event_unreadable(id: int, type: str, organization_id: int) -> Envelope:
    """What a client gets instead of stored event `id`, which cannot be sent: an `error`
    frame naming it (EVENT_UNREADABLE), so that it reloads what it shows through REST
    and reads on.

    An event log yields it in that event's place. It is routed, filtered, ordered and
    deduplicated as that event would be (its id and type), so a replay, a catch-up or
    the hub's gap filling moves past the event instead of stopping at it; its frame
    carries no `id`, like every control frame.
    """
    frame = orjson.dumps(
        {
            "type": "error",
            "code": EVENT_UNREADABLE,
            "message": f"event {id} ({type}) could not be sent; reload through REST",
            "event_id": id,
            "event_type": type,
        }
    )
    # Given no data: the frame names no conversation and no source connection.
    return Envelope.framed(frame, id, type, organization_id, {})


def unknown_event_types(unknown: Collection[str], known: Collection[str]) -> FrameError:
    """Names what was asked for and lists what exists, so a typo is found at once."""
    names = sorted(unknown)
    named = ", ".join(repr(name) for name in names[:MAX_NAMED_UNKNOWN])
    if len(names) > MAX_NAMED_UNKNOWN:
        named += f" and {len(names) - MAX_NAMED_UNKNOWN} more"
    plural = "s" if len(names) > 1 else ""
    return FrameError(
        UNKNOWN_EVENT_TYPE,
        f"unknown event type{plural} {named}; the event types are {', '.join(sorted(known))}",
    )


def subscription(
    events: frozenset[str] | None, conversation_ids: frozenset[int] | None
) -> Envelope:
    return control(
        "subscription",
        {
            "events": None if events is None else sorted(events),
            "conversation_ids": None if conversation_ids is None else sorted(conversation_ids),
        },
    )


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _event_types(body: dict[str, Any]) -> frozenset[str] | None:
    value = body.get("events")
    if value is None:
        return None
    if not isinstance(value, list):
        raise FrameError("INVALID_FRAME", "'events' must be a list of event types")
    return _checked_event_types(value)


def _checked_event_types(values: list[Any]) -> frozenset[str]:
    if len(values) > MAX_FILTER_ITEMS:
        raise FrameError("INVALID_FRAME", f"at most {MAX_FILTER_ITEMS} event types")
    for value in values:
        if not isinstance(value, str) or not 0 < len(value) <= MAX_EVENT_TYPE_LENGTH:
            raise FrameError("INVALID_FRAME", "event types must be short non-empty strings")
    return frozenset(values)


def _conversation_ids(body: dict[str, Any]) -> frozenset[int] | None:
    value = body.get("conversation_ids")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_FILTER_ITEMS:
        raise FrameError(
            "INVALID_FRAME", f"'conversation_ids' must be a list of at most {MAX_FILTER_ITEMS}"
        )
    if not all(_is_id(item) for item in value):
        raise FrameError("INVALID_FRAME", "'conversation_ids' must hold positive integers")
    return frozenset(value)
