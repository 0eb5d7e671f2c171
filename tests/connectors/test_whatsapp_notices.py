"""WhatsApp deliveries that are not messages: calls, a chat opened, notices about the
customer, read into what an agent reads in the conversation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.types import Activity, ChannelHealth, IdentityChange, Unhandled
from connectors.whatsapp import WhatsAppAdapter
from connectors.whatsapp_notices import call_length
from tests.connectors.helpers import WHATSAPP_SECRET, meta_request, payload

adapter = WhatsAppAdapter()
PNID = "106540352242922"
CALL = "wacid.HBgLMTY1MDU1NTEyMzQVAgARGBI3QjU5"


def parse_body(body: dict[str, Any]) -> list[object]:
    return list(adapter.parse(meta_request(json.dumps(body).encode(), WHATSAPP_SECRET)))


def only(name: str) -> object:
    events = list(adapter.parse(meta_request(payload("whatsapp", name), WHATSAPP_SECRET)))
    assert len(events) == 1, events
    return events[0]


@pytest.mark.parametrize(
    ("name", "kind", "summary", "external_id"),
    [
        ("calls.json", "call.incoming", "Incoming call", f"{CALL}:connect"),
        ("calls_missed.json", "call.missed", "Missed call",
         "wacid.HBgLMTY1MDU1NTEyMzQVAgARGBJNSVNTRUQ:terminate"),
        ("calls_connected.json", "call.ended", "Incoming call, 3 min 12 s", f"{CALL}:terminate"),
    ],
)
def test_a_customers_call_is_an_activity(name: str, kind: str, summary: str, external_id: str):
    event = only(name)
    assert isinstance(event, Activity)
    assert (event.kind, event.summary, event.external_id) == (kind, summary, external_id)
    assert (event.channel_key, event.sender_id) == (PNID, "16505551234")
    assert (event.sender_name, event.sender_phone) == ("Sheena Nelson", "+16505551234")
    assert event.data["direction"] == "USER_INITIATED"
    assert "session" not in event.data  # the SDP offer is of no use to a reader


def test_a_connected_call_keeps_its_duration():
    event = only("calls_connected.json")
    assert isinstance(event, Activity)
    assert event.data["duration"] == 192 and event.data["status"] == "COMPLETED"
    assert event.timestamp == datetime.fromtimestamp(1750001312, UTC)


def _business_call(event: str, **fields: Any) -> dict[str, Any]:
    body = json.loads(payload("whatsapp", "calls.json"))
    body["entry"][0]["changes"][0]["value"]["calls"] = [
        {"id": "wacid.OUT", "from": "15550783881", "to": "16505551234", "event": event,
         "timestamp": "1750002000", "direction": "BUSINESS_INITIATED", **fields}
    ]
    return body


@pytest.mark.parametrize(
    ("fields", "kind", "summary"),
    [
        ({"status": "COMPLETED", "duration": 45}, "call.outgoing", "Outgoing call, 45 s"),
        ({"status": "FAILED"}, "call.unanswered", "Outgoing call, not answered"),
    ],
)
def test_a_call_to_the_customer_is_told_when_it_ends(fields, kind, summary):
    [event] = parse_body(_business_call("terminate", **fields))
    assert isinstance(event, Activity)
    assert (event.kind, event.summary, event.sender_id) == (kind, summary, "16505551234")


def test_the_start_of_a_call_to_the_customer_is_only_acknowledged():
    [event] = parse_body(_business_call("connect"))
    assert isinstance(event, Unhandled) and event.field == "calls.connect"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (45, "45 s"), (60, "1 min"), (192, "3 min 12 s"), (3600, "1 h"),
     (3900, "1 h 5 min")],
)
def test_call_length_reads_as_spoken(seconds: int, text: str):
    assert call_length(seconds) == text


def test_a_chat_opened_is_an_activity_not_a_message():
    event = only("request_welcome.json")
    assert isinstance(event, Activity)
    assert (event.kind, event.summary) == ("chat.opened", "Customer opened the chat")
    assert (event.external_id, event.sender_id) == ("wamid.WELCOME.1", "16505551234")
    assert event.sender_name == "Sheena Nelson"


def test_a_changed_number_is_an_activity_of_the_old_number_then_a_move_to_the_new():
    activity, move = list(
        adapter.parse(meta_request(payload("whatsapp", "system_user_changed_number.json"), None))
    )
    assert isinstance(activity, Activity)
    assert activity.kind == "contact.number_changed"
    assert activity.summary == "Customer changed their number to +16505559876"
    assert (activity.sender_id, activity.external_id) == ("16505551234", "wamid.SYSTEM.1")
    assert move == IdentityChange(
        platform="whatsapp",
        channel_key="106540352242922",
        old_id="16505551234",
        new_id="16505559876",
        timestamp=activity.timestamp,
        external_id="wamid.SYSTEM.1:identity",
        new_phone="+16505559876",
    )


def test_a_changed_user_id_moves_the_user_id_and_says_nothing_in_the_chat():
    event = only("system_user_changed_user_id.json")
    assert isinstance(event, IdentityChange)
    assert (event.id_kind, event.old_id, event.new_id) == ("user_id", "US.1187730", "US.4410992")
    assert event.new_phone is None


def test_a_user_id_notice_without_both_ids_is_only_acknowledged():
    body = json.loads(payload("whatsapp", "system_user_changed_user_id.json"))
    del body["entry"][0]["changes"][0]["value"]["messages"][0]["system"]["previous_user_id"]
    [event] = list(adapter.parse(meta_request(json.dumps(body).encode(), None)))
    assert isinstance(event, Unhandled) and event.field == "messages.system.user_changed_user_id"


# -- the account behind the channel -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "health", "reason"),
    [
        ("account_update_restricted.json", "restricted",
         "Restricted: biz initiated messaging until 2026-12-31T00:00:00+0000"),
        ("account_update_disabled.json", "disabled",
         "The WhatsApp Business Account was disabled on 2026-12-15 (scam)"),
        ("account_update_reinstated.json", "ok", None),
        ("account_update.json", "ok", None),
        ("phone_number_quality_update.json", "restricted",
         "The phone number's quality is flagged (messaging limit TIER_1K)"),
        ("phone_number_quality_update_unflagged.json", "ok", None),
        ("message_template_status_update.json", None,
         "message template status update order_confirmation: approved"),
    ],
)
def test_account_notices_say_what_they_mean_for_sending(name, health, reason):
    event = only(name)
    assert isinstance(event, ChannelHealth)
    assert (event.health, event.reason) == (health, reason)
    # They name the account, not a number: the application finds its channels by it.
    assert (event.channel_key, event.account_id) == (None, "102290129340398")


@pytest.mark.parametrize(
    ("value", "health"),
    [
        ({"event": "ACCOUNT_DELETED"}, "disabled"),
        ({"event": "ACCOUNT_OFFBOARDED"}, "disabled"),
        ({"event": "PARTNER_REMOVED"}, "disabled"),
        ({"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "ADULT"}},
         "restricted"),
        ({"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "SCHEDULE_FOR_DISABLE"}},
         "restricted"),
        ({"event": "ACCOUNT_RECONNECTED"}, "ok"),
        ({"event": "BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE"}, None),
    ],
)
def test_account_update_events(value, health):
    body = json.loads(payload("whatsapp", "account_update.json"))
    body["entry"][0]["changes"][0]["value"] = value
    [event] = parse_body(body)
    assert isinstance(event, ChannelHealth) and event.health == health
    assert event.health == "ok" or event.reason
