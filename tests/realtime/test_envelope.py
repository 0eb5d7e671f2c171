from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from realtime import Envelope, EnvelopeError
from realtime.envelope import control, format_timestamp, text_frame


def test_an_event_is_serialized_once_into_the_documented_envelope() -> None:
    moment = datetime(2026, 1, 15, 16, 35, 0, 123456, tzinfo=UTC)
    envelope = Envelope.build(
        "message.received", 1, {"conversation_id": 9, "text": "hi"}, id=1042, timestamp=moment
    )
    assert orjson.loads(envelope.frame) == {
        "id": 1042,
        "type": "message.received",
        "organization_id": 1,
        "timestamp": "2026-01-15T16:35:00.123Z",
        "data": {"conversation_id": 9, "text": "hi"},
    }
    assert envelope.text == envelope.frame.decode()
    assert (envelope.id, envelope.conversation_id, envelope.ephemeral) == (1042, 9, False)


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 1, 15, 18, 0, 0, 999999, tzinfo=plus_two)) == (
        "2026-01-15T16:00:00.999Z"
    )
    assert format_timestamp(datetime(2026, 1, 15, 16, 0)) == "2026-01-15T16:00:00.000Z"
    body = orjson.loads(Envelope.build("lead.created", 1, {"at": datetime(2026, 1, 1)}).frame)
    assert body["data"]["at"].endswith("Z")


def test_conversation_events_are_filtered_by_their_own_id() -> None:
    assert Envelope.build("conversation.updated", 1, {"id": 7}).conversation_id == 7
    assert Envelope.build("lead.created", 1, {"id": 7}).conversation_id is None
    assert Envelope.build("message.sent", 1, {"id": 3, "conversation_id": 7}).conversation_id == 7


def test_ephemeral_events_have_no_id_and_remember_their_sender() -> None:
    typing = Envelope.build("typing", 1, {"conversation_id": 7, "connection_id": "abc"})
    assert typing.ephemeral and typing.source == "abc"
    assert "id" not in orjson.loads(typing.frame)
    # A stored event never skips anyone.
    stored = Envelope.build("message.sent", 1, {"connection_id": "abc"}, id=5)
    assert stored.source is None


def test_control_frames_carry_a_type_and_no_id() -> None:
    pong = control("pong")
    assert orjson.loads(pong.frame) == {"type": "pong"}
    assert pong.id is None


def test_control_frames_name_no_conversation_whatever_their_fields() -> None:
    frame = control("subscribed", {"conversation_id": 7, "connection_id": "abc"})
    assert (frame.conversation_id, frame.source, frame.organization_id) == (None, None, 0)


def test_every_envelope_carries_its_frame_as_text_and_as_wire_bytes() -> None:
    for envelope in (
        Envelope.build("message.sent", 1, {"conversation_id": 7}, id=5),
        Envelope.parse(b'{"id":5,"type":"message.sent","organization_id":1,"data":{}}'),
        control("pong"),
    ):
        assert envelope.text == envelope.frame.decode()
        assert envelope.wire == text_frame(envelope.frame)


def test_parsing_keeps_the_received_bytes_as_the_frame() -> None:
    original = Envelope.build("conversation.created", 3, {"id": 12}, id=77)
    received = bytes(original.frame)
    parsed = Envelope.parse(received)
    assert parsed.frame is received
    assert parsed == original


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "x", "organization_id": "1", "data": {}}',
        b'{"type": "", "organization_id": 1, "data": {}}',
        b'{"type": "x", "organization_id": 1, "data": []}',
        b'{"id": "5", "type": "x", "organization_id": 1, "data": {}}',
        b'{"id": true, "type": "x", "organization_id": 1, "data": {}}',
    ],
)
def test_parsing_rejects_what_is_not_an_envelope(payload: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.parse(payload)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_the_wire_form_is_one_unmasked_text_frame_a_client_decodes(size: int) -> None:
    envelope = Envelope.build("message.received", 1, {"text": "é" * (size // 2)}, id=1)
    reader = StreamReader()
    reader.feed_data(envelope.wire)
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame = done.value.value
    assert (frame.opcode, frame.fin) == (Opcode.TEXT, True)
    assert frame.data == envelope.frame
    # Nothing before or after it: the frame is exactly the bytes to write.
    assert len(envelope.wire) == len(frame.serialize(mask=False))
