"""The event envelope: serialized once, parsed once per process, shared by every recipient."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson

_TEXT_FRAME = 0x81  # FIN + opcode 1 (text)

# Datetimes inside `data` follow the project convention: UTC with a `Z`.
_DUMPS_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


class EnvelopeError(ValueError):
    """A broker payload that is not an event envelope."""


class DataNotEncodable(ValueError):
    """Event data that cannot be written as JSON (nested past orjson's limit, a key that
    is not a string, a value of no JSON type): it can never become a frame."""


def encode_data(data: Mapping[str, Any]) -> bytes:
    """`data` exactly as an event's frame carries it, or DataNotEncodable.

    `Envelope.build(..., encoded=...)` places these bytes in the frame as they are: an
    application that encodes an event's data before storing it both knows the event can
    be sent and never encodes it again.
    """
    try:
        # One level down, where a frame carries it (inside the envelope's object): orjson
        # limits nesting from the top, so data that encodes here encodes in any frame,
        # and data that would not is refused here rather than by every frame to come.
        wrapped = orjson.dumps([data], option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise DataNotEncodable(str(exc)) from None
    return wrapped[1:-1]


def format_timestamp(moment: datetime) -> str:
    """UTC to the millisecond with a ``Z``; naive means UTC."""
    # isoformat, not strftime: it is paid for every event. In UTC its text ends in
    # "+00:00", which the Z replaces.
    if moment.tzinfo is None:
        return moment.isoformat("T", "milliseconds") + "Z"
    return moment.astimezone(UTC).isoformat("T", "milliseconds")[:-6] + "Z"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as it travels through the process.

    `frame` is the exact JSON sent to clients and published to the broker; `text` is the
    same frame decoded once, because ASGI text messages carry `str` and decoding per
    recipient would repeat the work for every socket; `wire` is the whole WebSocket frame
    around it, for transports that take bytes directly.
    """

    id: int | None
    type: str
    organization_id: int
    # What subscription filters look at, extracted once instead of per connection.
    conversation_id: int | None
    # The connection whose action caused an ephemeral event (typing): it is not sent back.
    source: str | None
    frame: bytes
    text: str
    wire: bytes

    @property
    def ephemeral(self) -> bool:
        # Stored events have an id from the outbox; typing and the like are never stored.
        return self.id is None

    @classmethod
    def build(
        cls,
        type: str,
        organization_id: int,
        data: Mapping[str, Any],
        *,
        id: int | None = None,
        timestamp: datetime | None = None,
        encoded: bytes | None = None,
    ) -> Envelope:
        """`encoded`: `encode_data(data)`, when the caller has it already.

        Raises DataNotEncodable when `data` cannot be written.
        """
        body: dict[str, Any] = {}
        if id is not None:
            body["id"] = id
        body["type"] = type
        body["organization_id"] = organization_id
        body["timestamp"] = format_timestamp(timestamp or datetime.now(UTC))
        body["data"] = data if encoded is None else orjson.Fragment(encoded)
        try:
            frame = orjson.dumps(body, option=_DUMPS_OPTIONS)
        except orjson.JSONEncodeError as exc:
            # The rest of the body is ours and always encodes.
            raise DataNotEncodable(str(exc)) from None
        return cls.framed(frame, id, type, organization_id, data)

    @classmethod
    def parse(cls, frame: bytes) -> Envelope:
        """Rebuild an envelope from broker bytes, keeping those bytes as the frame."""
        try:
            body = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise EnvelopeError("not a JSON object")
        id_ = body.get("id")
        type_ = body.get("type")
        organization_id = body.get("organization_id")
        data = body.get("data")
        if id_ is not None and not _is_int(id_):
            raise EnvelopeError("'id' must be an integer")
        if not isinstance(type_, str) or not type_:
            raise EnvelopeError("'type' must be a non-empty string")
        if not _is_int(organization_id):
            raise EnvelopeError("'organization_id' must be an integer")
        if not isinstance(data, dict):
            raise EnvelopeError("'data' must be an object")
        return cls.framed(frame, id_, type_, organization_id, data)

    @classmethod
    def framed(
        cls,
        frame: bytes,
        id: int | None,
        type: str,
        organization_id: int,
        data: Mapping[str, Any],
    ) -> Envelope:
        """The envelope around an encoded `frame` whose fields are the others given."""
        return cls(
            id=id,
            type=type,
            organization_id=organization_id,
            conversation_id=_conversation_id(type, data),
            source=_source(id, data),
            frame=frame,
            text=frame.decode(),
            wire=text_frame(frame),
        )


def control(type: str, fields: Mapping[str, Any] | None = None) -> Envelope:
    """A frame for one connection (`pong`, `error`, ...): a type, its fields, and no id.

    It is queued to a single connection, never routed, so it belongs to no organization.
    """
    body: dict[str, Any] = {"type": type}
    if fields:
        body.update(fields)
    # No data: a control frame names no conversation and no source connection.
    return Envelope.framed(orjson.dumps(body, option=_DUMPS_OPTIONS), None, type, 0, {})


def text_frame(payload: bytes) -> bytes:
    """`payload` as one unfragmented WebSocket text frame (RFC 6455, section 5.2).

    Frames from a server are never masked, so this is the same bytes for every recipient
    of an event: it is encoded once and handed to each transport as it is.
    """
    size = len(payload)
    if size < 126:
        header = bytes((_TEXT_FRAME, size))
    elif size < 1 << 16:
        header = bytes((_TEXT_FRAME, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((_TEXT_FRAME, 127)) + size.to_bytes(8, "big")
    return header + payload


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _conversation_id(type: str, data: Mapping[str, Any]) -> int | None:
    value = data.get("conversation_id")
    if value is None and type.startswith("conversation."):
        value = data.get("id")
    return value if _is_int(value) else None


def _source(id: int | None, data: Mapping[str, Any]) -> str | None:
    if id is not None:
        return None
    value = data.get("connection_id")
    return value if isinstance(value, str) else None
