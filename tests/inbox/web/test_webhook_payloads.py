"""Every documented payload file, signed and posted twice to a real server: answered
200 both times, stored once, and readable as an agent sees it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import col

from inbox.models import Conversation, Message
from tests.connectors.helpers import PAYLOADS
from tests.inbox.platforms import (
    Connected,
    event_types,
    events_of,
    instagram_body,
    instagram_channel,
    post_meta,
    rows,
    unique_digits,
    whatsapp_body,
    whatsapp_channel,
)

DOC_BUSINESS_ACCOUNT = b"102290129340398"
TEXT_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="

WHATSAPP = sorted(p.name for p in (PAYLOADS / "whatsapp").glob("*.json"))
INSTAGRAM = sorted(p.name for p in (PAYLOADS / "instagram").glob("*.json"))
# What must be there before a file means something: the message it edits, the
# reaction it removes, the customer a business-app echo is addressed to.
NEEDS = {
    "edit.json": ["text.json"],
    "revoke.json": ["text.json"],
    "reaction_removed.json": ["reaction.json"],
    "smb_message_echoes.json": ["text.json"],
    "smb_message_echoes_edit.json": ["text.json", "smb_message_echoes.json"],
    "smb_message_echoes_revoke.json": ["text.json", "smb_message_echoes.json"],
    "smb_message_echoes_reaction.json": ["text.json"],
    "smb_message_echoes_reaction_removed.json": ["text.json", "smb_message_echoes_reaction.json"],
    "system_user_changed_number.json": ["text.json"],
    "deleted.json": ["text.json"],
    "message_edit.json": ["text.json"],
    "echo.json": ["text.json"],
    "unreact.json": ["reaction.json"],
}


def waba_channel(tenant: Any) -> tuple[Connected, bytes]:
    account = f"102{unique_digits(12)}".encode()
    channel = whatsapp_channel(tenant, business_account_id=account.decode())
    return channel, account


def body_for(kind: str, channel: Connected, account: bytes, name: str) -> bytes:
    if kind == "instagram":
        return instagram_body(channel, name)
    return whatsapp_body(channel, name).replace(DOC_BUSINESS_ACCOUNT, account)


def messages_of(service: Any, channel: Connected) -> list[Message]:
    return rows(service, Message, col(Message.channel_id) == channel.id)


def shown(tenant: Any, service: Any, channel: Connected) -> list[dict[str, Any]]:
    """Every message of the channel as the API shows it to an agent."""
    convs = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    found: list[dict[str, Any]] = []
    for conv in convs:
        r = tenant.api.get(f"/api/conversations/{conv.id}/messages")
        assert r.status_code == 200, r.text
        found.extend(r.json()["data"])
    return sorted(found, key=lambda m: m["id"])


@pytest.mark.parametrize(
    ("kind", "name"),
    [("whatsapp", n) for n in WHATSAPP] + [("instagram", n) for n in INSTAGRAM],
)
def test_each_payload_twice_is_answered_200_stored_once_and_readable(service, tenant, kind, name):
    if kind == "whatsapp":
        channel, account = waba_channel(tenant)
    else:
        channel, account = instagram_channel(tenant), b""
    for before in NEEDS.get(name, []):
        r = post_meta(service, kind, body_for(kind, channel, account, before), channel.secret)
        assert r.status_code == 200, r.text
    stored_before = len(messages_of(service, channel))
    body = body_for(kind, channel, account, name)

    first = post_meta(service, kind, body, channel.secret)
    assert first.status_code == 200, first.text
    after_first = shown(tenant, service, channel)
    events = event_types(service, tenant.org_id)

    again = post_meta(service, kind, body, channel.secret)
    assert again.status_code == 200, again.text
    assert again.json()["stored"] == 0
    # A retry changes nothing an agent can see, and tells nobody anything new.
    assert shown(tenant, service, channel) == after_first
    assert event_types(service, tenant.org_id) == events

    new = after_first[stored_before:]
    assert first.json()["stored"] == len(new)
    for message in after_first:
        if message["content_type"] != "deleted":
            assert message["content"] or message["attachments"], message
    received = events_of(service, tenant.org_id, "message.received")
    inbound_new = [m for m in new if m["direction"] == "inbound"]
    assert {m["id"] for m in inbound_new} <= {e.data["id"] for e in received}


WHATSAPP_READS = {
    "order.json": ("order", "Order: 2 × SKU-1 at 9.99 EUR, 1 × SKU-2 at 5.00 EUR — total 24.98 EUR."  # noqa: RUF001
                   " Note: please gift wrap"),
    "request_welcome.json": ("activity", "Customer opened the chat"),
    "unknown.json": ("unknown", "Unsupported message: Message type unknown: Message type is"
                     " currently not supported."),
    "referral.json": ("image", "via ad: Spring sale: 20% off"),
    "forwarded.json": ("text", "Have you seen this deal?"),
    "location_coordinates.json": ("location", "52.520008, 13.404954"),
}


@pytest.mark.parametrize("name", list(WHATSAPP_READS))
def test_whatsapp_message_types_read_as_a_person_would(service, tenant, name):
    channel, account = waba_channel(tenant)
    r = post_meta(service, "whatsapp", body_for("whatsapp", channel, account, name),
                  channel.secret)
    assert r.json()["stored"] == 1
    [message] = shown(tenant, service, channel)
    assert (message["content_type"], message["content"]) == WHATSAPP_READS[name]
    if name == "order.json":
        [data] = message["attachments"]
        assert data["data"]["order"]["product_items"][0]["product_retailer_id"] == "SKU-1"
    if name == "forwarded.json":
        assert message["platform_data"]["frequently_forwarded"] is True
    if name == "referral.json":
        assert message["platform_data"]["referral"]["headline"] == "Spring sale: 20% off"


def test_an_edit_replaces_the_text_and_keeps_the_previous_one(service, tenant):
    channel, account = waba_channel(tenant)
    post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "text.json"),
              channel.secret)
    r = post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "edit.json"),
                  channel.secret)
    assert r.json()["updated"] == 1
    [message] = shown(tenant, service, channel)
    assert message["content"] == "Does it come in dark blue?"
    [edit] = message["platform_data"]["edits"]
    assert (edit["type"], edit["previous"]) == ("edit", "Does it come in another color?")
    [event] = events_of(service, tenant.org_id, "message.updated")
    assert (event.data["id"], event.data["content"]) == (message["id"], message["content"])


def test_an_edit_of_an_unknown_message_stores_nothing(service, tenant):
    channel, account = waba_channel(tenant)
    r = post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "edit.json"),
                  channel.secret)
    assert r.status_code == 200
    assert r.json()["ignored"] == 1
    assert messages_of(service, channel) == []


def test_a_revoke_deletes_the_message(service, tenant):
    channel, account = waba_channel(tenant)
    post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "text.json"),
              channel.secret)
    r = post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "revoke.json"),
                  channel.secret)
    assert r.json()["updated"] == 1
    [message] = shown(tenant, service, channel)
    assert (message["content_type"], message["content"]) == ("deleted", None)
    assert [e.data["id"] for e in events_of(service, tenant.org_id, "message.deleted")] == [
        message["id"]]


@pytest.mark.parametrize("kind", ["whatsapp", "instagram"])
def test_removing_a_reaction_takes_it_away_and_adds_no_blank_bubble(service, tenant, kind):
    if kind == "whatsapp":
        channel, account = waba_channel(tenant)
        removal = "reaction_removed.json"
    else:
        channel, account = instagram_channel(tenant), b""
        removal = "unreact.json"
    post_meta(service, kind, body_for(kind, channel, account, "reaction.json"), channel.secret)
    [reaction] = shown(tenant, service, channel)
    assert reaction["content_type"] == "reaction" and reaction["content"]

    r = post_meta(service, kind, body_for(kind, channel, account, removal), channel.secret)

    assert r.status_code == 200 and r.json()["stored"] == 0
    [gone] = shown(tenant, service, channel)
    assert gone["id"] == reaction["id"]
    assert (gone["content_type"], gone["content"]) == ("deleted", None)
    assert [e.data["id"] for e in events_of(service, tenant.org_id, "message.deleted")] == [
        reaction["id"]]


def test_a_reaction_after_its_removal_in_the_same_second_is_a_new_reaction(service, tenant):
    channel = instagram_channel(tenant)
    react = json.loads(instagram_body(channel, "reaction.json"))
    unreact = json.loads(instagram_body(channel, "unreact.json"))
    for body in (react, unreact):
        body["entry"][0]["messaging"][0]["timestamp"] = 1569262495000
    react_again = json.loads(json.dumps(react))
    react_again["entry"][0]["messaging"][0]["timestamp"] = 1569262495400
    for body in (react, unreact, react_again):
        r = post_meta(service, "instagram", json.dumps(body).encode(), channel.secret)
        assert r.status_code == 200
    first, second = shown(tenant, service, channel)
    assert first["content_type"] == "deleted"
    assert (second["content_type"], second["content"]) == ("reaction", "❤️")


def test_a_business_app_echo_joins_the_customers_conversation_as_sent(service, tenant):
    channel, account = waba_channel(tenant)
    post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "text.json"),
              channel.secret)
    r = post_meta(service, "whatsapp",
                  body_for("whatsapp", channel, account, "smb_message_echoes.json"),
                  channel.secret)
    assert r.json()["stored"] == 2
    inbound, text, image = shown(tenant, service, channel)
    assert {text["conversation_id"], image["conversation_id"]} == {inbound["conversation_id"]}
    assert [(m["direction"], m["status"]) for m in (text, image)] == [("outbound", "sent")] * 2
    assert text["content"] == "Yes, it also comes in dark blue."
    assert (image["content_type"], image["content"]) == ("image", "Dark blue, in stock")
    assert image["attachments"][0]["media_id"] == "1003383421387302"
    sent = events_of(service, tenant.org_id, "message.sent")
    assert [e.data["id"] for e in sent] == [text["id"], image["id"]]


def test_edits_deletions_and_reactions_made_in_the_business_app_apply(service, tenant):
    channel, account = waba_channel(tenant)
    for name in ("text.json", "smb_message_echoes.json", "smb_message_echoes_edit.json",
                 "smb_message_echoes_revoke.json", "smb_message_echoes_reaction.json"):
        r = post_meta(service, "whatsapp", body_for("whatsapp", channel, account, name),
                      channel.secret)
        assert r.status_code == 200, r.text
    inbound, text, image, reaction = shown(tenant, service, channel)
    assert text["content"] == "Yes, it also comes in dark blue and in black."
    [edit] = text["platform_data"]["edits"]
    assert edit["previous"] == "Yes, it also comes in dark blue."
    assert (image["content_type"], image["content"], image["attachments"]) == ("deleted", None, [])
    assert (reaction["direction"], reaction["content_type"], reaction["content"]) == (
        "outbound", "reaction", "\U0001F44D")
    assert reaction["attachments"][0]["target_id"] == inbound["external_id"]

    removal = body_for("whatsapp", channel, account, "smb_message_echoes_reaction_removed.json")
    r = post_meta(service, "whatsapp", removal, channel.secret)
    assert (r.json()["stored"], r.json()["updated"]) == (0, 1)
    *_, gone = shown(tenant, service, channel)
    assert (gone["id"], gone["content_type"]) == (reaction["id"], "deleted")
    assert [e.data["id"] for e in events_of(service, tenant.org_id, "message.updated")] == [
        text["id"]]
    assert [e.data["id"] for e in events_of(service, tenant.org_id, "message.deleted")] == [
        image["id"], reaction["id"]]


def test_an_edit_in_the_business_app_never_changes_what_the_customer_wrote(service, tenant):
    channel, account = waba_channel(tenant)
    post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "text.json"),
              channel.secret)
    body = body_for("whatsapp", channel, account, "smb_message_echoes_edit.json").replace(
        b"wamid.ECHO.1", TEXT_WAMID.encode())
    r = post_meta(service, "whatsapp", body, channel.secret)
    assert r.json()["ignored"] == 1
    [message] = shown(tenant, service, channel)
    assert message["content"] == "Does it come in another color?"


def test_a_business_app_message_to_someone_new_makes_a_contact_not_a_lead(service, tenant):
    channel, account = waba_channel(tenant)
    r = post_meta(service, "whatsapp",
                  body_for("whatsapp", channel, account, "smb_message_echoes.json"),
                  channel.secret)
    assert r.json()["stored"] == 2
    text, image = shown(tenant, service, channel)
    assert text["conversation_id"] == image["conversation_id"]
    assert [e.data["phone"] for e in events_of(service, tenant.org_id, "contact.created")] == [
        "+16505551234"]
    assert events_of(service, tenant.org_id, "lead.created") == []


def test_a_changed_number_is_told_in_the_customers_conversation(service, tenant):
    channel, account = waba_channel(tenant)
    post_meta(service, "whatsapp", body_for("whatsapp", channel, account, "text.json"),
              channel.secret)
    body = json.loads(body_for("whatsapp", channel, account, "system_user_changed_number.json"))
    # Batched beside another customer's message: the notice is not theirs.
    other = json.loads(body_for("whatsapp", channel, account, "text.json"))
    value = other["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Pablo Morales"}, "wa_id": "16315551181"}]
    value["messages"][0].update({"from": "16315551181", "id": "wamid.PABLO.1"})
    body["entry"][0]["changes"].append(other["entry"][0]["changes"][0])
    r = post_meta(service, "whatsapp", json.dumps(body).encode(), channel.secret)
    assert r.json()["stored"] == 2
    first, notice, pablo = shown(tenant, service, channel)
    assert notice["content"] == "Customer changed their number to +16505559876"
    assert notice["conversation_id"] == first["conversation_id"]
    assert pablo["conversation_id"] != first["conversation_id"]


@pytest.mark.parametrize(
    "name",
    ["story_mention.json", "postback_without_mid.json"],
)
def test_instagram_story_mentions_and_postbacks_without_mid(service, tenant, name):
    channel = instagram_channel(tenant)
    r = post_meta(service, "instagram", instagram_body(channel, name), channel.secret)
    assert r.json()["stored"] == 1
    [message] = shown(tenant, service, channel)
    if name == "story_mention.json":
        assert (message["content_type"], message["content"]) == (
            "story_mention", "Mentioned you in their story")
        assert message["attachments"][0]["url"].startswith("https://lookaside.fbsbx.com/")
    else:
        assert (message["content_type"], message["content"]) == ("postback", "Talk to a person")
        assert message["external_id"].startswith("postback:")


# -- routing without a phone number id ------------------------------------------------


def test_a_delivery_naming_only_the_business_account_reaches_its_channel(service, tenant):
    channel, account = waba_channel(tenant)
    body = body_for("whatsapp", channel, account, "account_update.json")
    assert b"phone_number_id" not in body

    r = post_meta(service, "whatsapp", body, channel.secret)
    assert r.status_code == 200
    assert r.json() == {"stored": 0, "duplicates": 0, "updated": 0, "ignored": 1}
    # Forged: the business account names the channel, whose secret did not sign it.
    forged = post_meta(service, "whatsapp", body, "not-the-app-secret")
    assert forged.status_code == 401
    assert post_meta(service, "whatsapp", body, None).status_code == 401


@pytest.mark.parametrize("kind", ["whatsapp", "instagram"])
def test_a_delivery_naming_no_channel_is_acknowledged_only_when_an_app_secret_signed_it(
    service, tenant, kind
):
    if kind == "whatsapp":
        channel, _ = waba_channel(tenant)
        # A business account and number connected nowhere.
        body = (PAYLOADS / "whatsapp" / "account_update.json").read_bytes().replace(
            DOC_BUSINESS_ACCOUNT, f"103{unique_digits(12)}".encode())
    else:
        channel = instagram_channel(tenant)
        body = (PAYLOADS / "instagram" / "text.json").read_bytes().replace(
            b"17841405822304914", f"179{unique_digits(12)}".encode())

    r = post_meta(service, kind, body, channel.secret)
    assert r.status_code == 200
    assert r.json()["stored"] == 0 and r.json()["ignored"] == 1
    assert events_of(service, tenant.org_id) == []
    assert post_meta(service, kind, body, "not-a-configured-secret").status_code == 401
    assert post_meta(service, kind, body, None).status_code == 401
