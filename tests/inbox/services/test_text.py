"""What PostgreSQL cannot hold (NUL, lone surrogates) becomes U+FFFD, anywhere in an event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.types import InboundMessage, ReadReceipt, StatusUpdate
from inbox.services.text import storable, storable_events, storable_text

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def message(**fields: object) -> InboundMessage:
    values: dict[str, object] = {
        "platform": "whatsapp",
        "channel_key": "106000",
        "sender_id": "16505551234",
        "external_id": "wamid.1",
        "timestamp": T0,
        "content": "Does it come in another color?",
        "sender_name": "Sheena Nelson",
        "raw": {"context": {"from": "16505550000"}},
        **fields,
    }
    return InboundMessage(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("a\x00b", "a\ufffdb"),
        ("\x00\x00", "\ufffd\ufffd"),
        ("high \ud800 alone", "high \ufffd alone"),
        ("low \udfff alone", "low \ufffd alone"),
        # Other control characters are text PostgreSQL holds: kept as sent.
        ("tab\tbell\x07del\x7f", "tab\tbell\x07del\x7f"),
        ("Grüße 日本語 👍 \ufffd", "Grüße 日本語 👍 \ufffd"),
        ("", ""),
    ],
)
def test_nul_and_lone_surrogates_become_the_replacement_character(sent, stored):
    assert storable_text(sent) == stored
    # What is left encodes as UTF-8, the only text PostgreSQL takes.
    storable_text(sent).encode("utf-8")


def test_every_string_of_nested_data_is_replaced_keys_too():
    raw = {"a\x00": ["x\ud83d", ("t\x00",), {"deep": "\x00"}], "n": 5, "none": None}
    assert storable(raw) == {
        "a\ufffd": ["x\ufffd", ("t\ufffd",), {"deep": "\ufffd"}], "n": 5, "none": None}


def test_clean_data_is_returned_itself_not_copied():
    raw = {"a": ["b", ("c",), {"d": 1}]}
    assert storable(raw) is raw


def test_every_text_field_of_a_message_is_replaced():
    sent = message(
        sender_id="1650\x005551234",
        external_id="wamid.\x00",
        content="hello\x00world \ud800",
        sender_name="Sheena\x00",
        sender_phone="+1650555\x00",
        reply_to="wamid.\udc00",
        attachments=[{"type": "document", "filename": "in\x00voice.pdf"}],
        raw={"button": {"payload": "yes\x00"}},
    )
    [stored] = storable_events([sent])
    assert stored.sender_id == "1650\ufffd5551234"
    assert stored.external_id == "wamid.\ufffd"
    assert stored.content == "hello\ufffdworld \ufffd"
    assert stored.sender_name == "Sheena\ufffd"
    assert stored.sender_phone == "+1650555\ufffd"
    assert stored.reply_to == "wamid.\ufffd"
    assert stored.attachments == [{"type": "document", "filename": "in\ufffdvoice.pdf"}]
    assert stored.raw == {"button": {"payload": "yes\ufffd"}}
    # The rest of the event is as parsed.
    assert (stored.platform, stored.timestamp, stored.content_type) == ("whatsapp", T0, "text")


def test_every_kind_of_event_is_replaced():
    status = StatusUpdate(platform="sms", channel_key="+1415", external_id="SM1",
                          status="failed", timestamp=T0, error_message="bad\x00 number")
    receipt = ReadReceipt(platform="instagram", channel_key="178", reader_id="r\ud800",
                          timestamp=T0, message_ids=("m\x00",))
    stored_status, stored_receipt = storable_events([status, receipt])
    assert stored_status.error_message == "bad\ufffd number"
    assert (stored_receipt.reader_id, stored_receipt.message_ids) == ("r\ufffd", ("m\ufffd",))


def test_a_delivery_with_nothing_to_replace_is_passed_on_as_it_is():
    events = [message(), message(external_id="wamid.2", content="Grüße 👍")]
    assert storable_events(events) is events


def test_text_that_spells_out_the_escape_is_kept_as_sent():
    # Six characters a person typed, not a NUL: nothing PostgreSQL refuses.
    [stored] = storable_events([message(content="\\u0000 and \\ud800")])
    assert stored.content == "\\u0000 and \\ud800"


def test_only_the_events_that_need_it_change_within_a_delivery():
    clean = message(external_id="wamid.clean")
    dirty = message(external_id="wamid.dirty", content="\x00")
    stored = storable_events([clean, dirty])
    assert stored[0] is clean
    assert stored[1].content == "\ufffd"
