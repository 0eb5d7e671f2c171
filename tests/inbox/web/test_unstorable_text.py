"""Text PostgreSQL cannot hold (NUL, lone surrogates) is stored with U+FFFD in its place,
on SQLite and PostgreSQL alike: the delivery is acknowledged, stored once, and reads
the same through the API on both, never a 500 the platform would retry for days."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col

from connectors.types import InboundMessage
from inbox.models import Channel
from inbox.services.ingest import ingest
from tests.inbox.platforms import (
    Connected,
    instagram_body,
    instagram_channel,
    post_meta,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    whatsapp_channel,
    whatsapp_text,
)

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def conversation_of(tenant: Any) -> dict[str, Any]:
    r = tenant.api.get("/api/conversations")
    assert r.status_code == 200, r.text
    [conversation] = r.json()["data"]
    return conversation  # type: ignore[no-any-return]


def messages_shown(tenant: Any) -> list[dict[str, Any]]:
    """The tenant's only conversation's messages, as the API shows them."""
    conversation = conversation_of(tenant)
    r = tenant.api.get(f"/api/conversations/{conversation['id']}/messages")
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def contacts_shown(tenant: Any) -> list[dict[str, Any]]:
    r = tenant.api.get("/api/contacts")
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def test_a_whatsapp_text_and_name_with_nul_are_stored_with_the_replacement_character(
    service, tenant
):
    channel = whatsapp_channel(tenant)
    body = whatsapp_text(channel, "wamid.nul-1", "before\x00after", name="Sheena\x00Nelson")
    assert b"\\u0000" in body  # the JSON escape a platform sends, not a raw byte

    r = post_meta(service, "whatsapp", body, channel.secret)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 1

    again = post_meta(service, "whatsapp", body, channel.secret)
    assert again.status_code == 200, again.text
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 1)

    [message] = messages_shown(tenant)
    assert message["content"] == "before\ufffdafter"
    assert message["external_id"] == "wamid.nul-1"
    [contact] = contacts_shown(tenant)
    assert contact["name"] == "Sheena\ufffdNelson"
    assert conversation_of(tenant)["last_message"]["preview"] == "before\ufffdafter"


def test_a_twilio_body_with_an_encoded_nul_is_stored_with_the_replacement_character(
    service, tenant
):
    channel = sms_channel(tenant)
    body = sms_body(channel, "sms.txt", Body="Open\x00on Sunday?")
    assert b"Body=Open%00on" in body

    r = post_twilio(service, "/webhooks/twilio/sms", body, channel.secret)
    assert (r.status_code, r.text) == (200, TWIML)
    again = post_twilio(service, "/webhooks/twilio/sms", body, channel.secret)
    assert (again.status_code, again.text) == (200, TWIML)

    [message] = messages_shown(tenant)
    assert message["content"] == "Open\ufffdon Sunday?"
    # Twilio's fields are kept with the message, replaced the same way.
    assert message["platform_data"]["Body"] == "Open\ufffdon Sunday?"


def test_an_instagram_text_with_nul_is_stored_with_the_replacement_character(service, tenant):
    channel = instagram_channel(tenant)
    delivery = json.loads(instagram_body(channel, "text.json"))
    delivery["entry"][0]["messaging"][0]["message"]["text"] = "Ship\x00to Canada?"
    body = json.dumps(delivery).encode()

    r = post_meta(service, "instagram", body, channel.secret)
    assert r.status_code == 200, r.text
    assert post_meta(service, "instagram", body, channel.secret).json()["duplicates"] == 1

    [message] = messages_shown(tenant)
    assert message["content"] == "Ship\ufffdto Canada?"


def test_a_lone_surrogate_reaching_ingest_is_stored_with_the_replacement_character(
    service, tenant
):
    # Any parser that lets one through (Python's own json does) hands ingest a string
    # UTF-8 cannot encode; here it goes straight in, with nothing else in the way.
    connected = whatsapp_channel(tenant)
    [channel] = rows(service, Channel, col(Channel.id) == connected.id)
    commits = service.app.state.inbox.group_commit
    event = InboundMessage(
        platform="whatsapp",
        channel_key=connected.key,
        sender_id="16505557777",
        external_id="wamid.surrogate-\ud800",
        timestamp=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        content="half an emoji: \ud83d",
        sender_name="Zo\udce9",
        sender_phone="+16505557777",
        raw={"context": {"note": "\udfff"}},
    )

    first = service.run(ingest(commits, channel, [event]))
    retry = service.run(ingest(commits, channel, [event]))
    assert (first.stored, retry.stored, retry.duplicates) == (1, 0, 1)

    [message] = messages_shown(tenant)
    assert message["content"] == "half an emoji: \ufffd"
    assert message["external_id"] == "wamid.surrogate-\ufffd"
    [contact] = contacts_shown(tenant)
    assert contact["name"] == "Zo\ufffd"


def test_a_whatsapp_text_with_a_lone_surrogate_escape_is_stored(service, tenant):
    channel: Connected = whatsapp_channel(tenant)
    body = whatsapp_text(channel, "wamid.lone-1", "x").replace(b'"body": "x"', b'"body": "\\ud800"')
    assert b"\\ud800" in body

    r = post_meta(service, "whatsapp", body, channel.secret)
    assert r.status_code == 200, r.text
    [message] = messages_shown(tenant)
    assert message["content"] == "\ufffd"


def test_platform_data_nested_too_deep_to_send_is_cut_and_the_message_stored(service, tenant):
    """A referral nested 252 levels deep would make an event no frame can carry: the
    delivery is still acknowledged and stored (never a 500 retried for days), with the
    part past the bound cut."""
    channel = whatsapp_channel(tenant)
    body = json.loads(whatsapp_text(channel, "wamid.deep-1", "from an ad"))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    deep: Any = "bottom"
    for _ in range(252):
        deep = {"d": deep}
    message["referral"] = {"source_type": "ad", "headline": "Spring sale", "nested": deep}
    raw = json.dumps(body).encode()

    for _ in range(2):
        r = post_meta(service, "whatsapp", raw, channel.secret)
        assert r.status_code == 200, r.text
    [shown] = messages_shown(tenant)
    assert shown["content"] == "from an ad"
    assert "[nested too deep]" in json.dumps(shown)
