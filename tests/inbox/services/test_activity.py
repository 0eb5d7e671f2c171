"""The rules of conversation activity: what storing a message does to its conversation,
the one preview rule, and the one row every stored message is built as."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inbox.services.activity import (
    CONVERSATION_FIELDS,
    PREVIEW_LENGTH,
    ConversationState,
    message_payload,
    message_row,
    preview,
    record_inbound,
    record_outbound,
)
from inbox.services.timestamps import utc_text

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def conversation(status: str = "open", last: datetime | None = None) -> ConversationState:
    return ConversationState(
        id=1,
        organization_id=1,
        contact_id=2,
        channel_id=3,
        status=status,
        assignee_id=None,
        labels=[],
        unread_count=0,
        last_message_at=last,
        last_message_preview=None if last is None else "before",
        first_response_seconds=None,
        created_at=T0,
        updated_at=T0,
    )


def row(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "organization_id": 1,
        "conversation_id": 1,
        "channel_id": 3,
        "direction": "inbound",
        "status": "received",
        "content": "Hi",
        "content_type": "text",
        "attachments": [],
        "ordered_at": T0,
        "now": T0,
    }
    values.update(changes)
    return message_row(**values)  # type: ignore[arg-type]  # keywords checked by the call


def test_the_preview_is_the_text_cut_to_length_or_the_kind_in_brackets():
    assert preview("Hello", "text") == "Hello"
    assert preview("x" * (PREVIEW_LENGTH + 5), "text") == "x" * PREVIEW_LENGTH
    assert preview(None, "image") == "[image]"
    assert preview("", "attachment") == "[attachment]"


def test_a_message_from_the_customer_is_unread_opens_a_pending_conversation_and_is_the_last():
    conv = conversation("pending", last=T0)
    record_inbound(conv, T0 + timedelta(minutes=1), "Hi", "text")
    assert (conv.status, conv.unread_count) == ("open", 1)
    assert (conv.last_message_at, conv.last_message_preview) == (T0 + timedelta(minutes=1), "Hi")


def test_a_message_from_the_customer_ends_a_snooze_an_activity_entry_does_not():
    conv = conversation("snoozed", last=T0)
    conv.snoozed_until = T0 + timedelta(days=1)
    record_inbound(conv, T0, "Missed call", "activity", unread=False, opens=False)
    assert (conv.status, conv.snoozed_until) == ("snoozed", T0 + timedelta(days=1))
    record_inbound(conv, T0 + timedelta(minutes=1), "Still there?", "text")
    assert (conv.status, conv.snoozed_until, conv.unread_count) == ("open", None, 1)


def test_an_older_message_counts_as_unread_but_leaves_the_last_message():
    conv = conversation(last=T0)
    record_inbound(conv, T0 - timedelta(minutes=1), "late", "text")
    assert conv.unread_count == 1
    assert (conv.last_message_at, conv.last_message_preview) == (T0, "before")


def test_an_activity_entry_waits_for_no_answer_and_may_leave_a_pending_conversation():
    conv = conversation("pending")
    record_inbound(conv, T0, "Missed call", "activity", unread=False, opens=False)
    assert (conv.status, conv.unread_count, conv.last_message_preview) == (
        "pending",
        0,
        "Missed call",
    )


def test_an_echo_is_the_last_message_only_when_not_older():
    conv = conversation(last=T0)
    assert not record_outbound(conv, T0 - timedelta(seconds=1), "old", "text")
    assert conv.last_message_preview == "before"
    assert record_outbound(conv, T0, None, "image")
    assert (conv.last_message_at, conv.last_message_preview) == (T0, "[image]")
    assert conv.unread_count == 0


def test_a_reply_written_here_is_the_last_message_whatever_the_platform_clocks_said():
    conv = conversation(last=T0 + timedelta(minutes=5))
    assert record_outbound(conv, T0, "Thanks", "text", written_here=True)
    assert (conv.last_message_at, conv.last_message_preview) == (T0, "Thanks")


def test_every_message_row_has_the_same_columns_so_rows_insert_together():
    inbound = row(external_id="m1", sender_contact_id=2, platform_data={"id": "m1"})
    echo = row(direction="outbound", status="sent", external_id="e1")
    assert inbound.keys() == echo.keys()
    assert (echo["sender_contact_id"], echo["platform_data"], echo["private"]) == (None, {}, False)


def test_a_stored_row_is_told_with_the_columns_it_left_to_their_defaults():
    payload = message_payload({**row(external_id="m1"), "id": 7})
    assert (payload["id"], payload["sender_user_id"], payload["error"]) == (7, None, None)
    assert payload["created_at"] == "2026-11-01T12:00:00Z"


def test_a_conversation_state_holds_every_field_its_wire_form_needs():
    assert set(CONVERSATION_FIELDS) >= {"status", "unread_count", "last_message_preview"}
    assert "changed" not in CONVERSATION_FIELDS


def test_utc_times_are_written_with_z():
    assert utc_text(T0) == "2026-11-01T12:00:00Z"
