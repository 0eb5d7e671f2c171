"""Webhooks in: platforms and web forms push deliveries, the service verifies them
on their raw bytes, stores them once, and answers only after they are stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from servers import free_port
from sqlalchemy import update
from sqlmodel import col
from support import LiveServer

from connectors.signatures import meta_signature
from inbox.app import create_app
from inbox.models import (
    Channel,
    Contact,
    ContactIdentity,
    Conversation,
    Lead,
    Message,
    utcnow,
)
from tests.connectors.helpers import payload
from tests.inbox.conftest import make_settings
from tests.inbox.platforms import (
    Connected,
    event_types,
    events_of,
    instagram_body,
    instagram_channel,
    post_meta,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    twilio_headers,
    whatsapp_body,
    whatsapp_channel,
    whatsapp_status,
    whatsapp_text,
)

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
SHEENA = "16505551234"


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def messages_of(service: Any, channel: Connected) -> list[Message]:
    return rows(service, Message, col(Message.channel_id) == channel.id)


def contacts_of(service: Any, tenant: Any) -> list[Contact]:
    return rows(service, Contact, col(Contact.organization_id) == tenant.org_id)


def identities_of(service: Any, tenant: Any) -> list[tuple[str, str, int]]:
    found = rows(service, ContactIdentity, col(ContactIdentity.organization_id) == tenant.org_id)
    return [(i.kind, i.external_id, i.contact_id) for i in found]


def nothing_stored(service: Any, tenant: Any) -> bool:
    """No message, contact, lead or event of the tenant exists."""
    org = tenant.org_id
    return (
        rows(service, Message, col(Message.organization_id) == org) == []
        and contacts_of(service, tenant) == []
        and rows(service, Lead, col(Lead.organization_id) == org) == []
        and events_of(service, org) == []
    )


def outbound(
    service: Any, inbound: Message, external_id: str | None, status: str = "sent"
) -> Message:
    """Our own reply in the conversation of ``inbound``, as the delivery worker leaves it."""

    async def insert() -> Message:
        async with service.db.session() as session:
            message = Message(
                organization_id=inbound.organization_id,
                conversation_id=inbound.conversation_id,
                channel_id=inbound.channel_id,
                direction="outbound",
                content="Thanks, we are on it.",
                external_id=external_id,
                status=status,
                attempts=1,
            )
            session.add(message)
            await session.commit()
            return message

    return service.run(insert())  # type: ignore[no-any-return]


async def set_fields(service: Any, message_id: int, **values: Any) -> None:
    async with service.db.session() as session:
        await session.exec(update(Message).where(col(Message.id) == message_id).values(**values))
        await session.commit()


def message_by_id(service: Any, message_id: int) -> Message:
    [message] = rows(service, Message, col(Message.id) == message_id)
    return message


# -- the subscription handshake ----------------------------------------------------


@pytest.mark.parametrize("kind", ["whatsapp", "instagram"])
def test_meta_handshake_answers_the_challenge_as_plain_text(service, tenant, kind):
    connect = whatsapp_channel if kind == "whatsapp" else instagram_channel
    channel = connect(tenant)
    web = service.client()
    query = {"hub.mode": "subscribe", "hub.verify_token": channel.settings["verify_token"],
             "hub.challenge": "1158201444"}
    r = web.get(f"/webhooks/{kind}", params=query)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "1158201444"

    wrong = web.get(f"/webhooks/{kind}", params={**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    not_subscribe = web.get(f"/webhooks/{kind}", params={**query, "hub.mode": "unsubscribe"})
    assert not_subscribe.status_code == 403


def test_the_handshake_of_a_deactivated_channel_is_refused(service, tenant):
    channel = whatsapp_channel(tenant)
    tenant.api.patch(f"/api/channels/{channel.id}", json={"is_active": False})
    r = service.client().get("/webhooks/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": channel.settings["verify_token"],
        "hub.challenge": "42"})
    assert r.status_code == 403


# -- WhatsApp ----------------------------------------------------------------------

WHATSAPP_FILES: dict[str, tuple[str, str, dict[str, Any] | None, int]] = {
    # file: (content_type, content, first attachment (subset), platform time)
    "text.json": ("text", "Does it come in another color?", None, 1749416383),
    "image.json": ("image", "Shipment arrived damaged",
                   {"type": "image", "media_id": "1003383421387256", "mime_type": "image/jpeg",
                    "caption": "Shipment arrived damaged"}, 1744344496),
    "audio.json": ("audio", "Voice message", {"type": "audio", "media_id": "1003383421387257",
                                 "mime_type": "audio/ogg; codecs=opus", "voice": True},
                   1744344496),
    "video.json": ("video", "How do I fix this?",
                   {"type": "video", "media_id": "1003383421387258", "mime_type": "video/mp4",
                    "caption": "How do I fix this?"}, 1744344496),
    "document.json": ("document", "Invoice for March",
                      {"type": "document", "media_id": "1003383421387259",
                       "mime_type": "application/pdf", "filename": "invoice-0042.pdf",
                       "caption": "Invoice for March"}, 1744344496),
    "sticker.json": ("sticker", "Sticker", {"type": "sticker", "media_id": "1003383421387260",
                                     "mime_type": "image/webp", "animated": False}, 1744344496),
    "location.json": ("location", "Main office, 1 Hacker Way, Menlo Park, CA 94025",
                      {"type": "location"}, 1744344496),
    "contacts.json": ("contacts", "Barbara J. Johnson", {"type": "contacts"}, 1744344496),
    "interactive_button_reply.json": ("interactive", "Cancel", {"type": "interactive"},
                                      1739321024),
    "interactive_list_reply.json": ("interactive", "Priority Mail Express — Next Day to 2 Days",
                                    {"type": "interactive"}, 1739321024),
    "button.json": ("button", "Unsubscribe from Promos", {"type": "button"}, 1739321024),
    "reaction.json": ("reaction", "👍", {"type": "reaction", "emoji": "👍"}, 1744344496),
    "unsupported.json": ("unsupported", "Unsupported message: Message type unknown: Message type"
                         " is currently not supported.", None, 1744344496),
}


@pytest.mark.parametrize("name", list(WHATSAPP_FILES))
def test_a_signed_whatsapp_delivery_stores_the_message(service, tenant, name):
    content_type, content, attachment, unix = WHATSAPP_FILES[name]
    channel = whatsapp_channel(tenant)
    body = whatsapp_body(channel, name)

    r = post_meta(service, "whatsapp", body, channel.secret)

    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 1
    [message] = messages_of(service, channel)
    sent = json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message.external_id == sent["id"]
    assert message.direction == "inbound"
    assert message.status == "received"
    assert message.content_type == content_type
    assert message.content == content
    assert message.platform_timestamp == at(unix)
    assert message.ordered_at == at(unix)
    if attachment is None:
        assert message.attachments == []
    else:
        assert {k: message.attachments[0].get(k) for k in attachment} == attachment
    [contact] = contacts_of(service, tenant)
    assert (contact.name, contact.phone) == ("Sheena Nelson", "+16505551234")
    assert identities_of(service, tenant) == [("whatsapp", SHEENA, contact.id)]
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert (conv.contact_id, conv.unread_count) == (contact.id, 1)
    assert message.conversation_id == conv.id
    assert message.sender_contact_id == contact.id


def test_kept_platform_details_of_structured_messages(service, tenant):
    channel = whatsapp_channel(tenant)
    for name in ("location.json", "interactive_list_reply.json"):
        assert post_meta(service, "whatsapp", whatsapp_body(channel, name),
                         channel.secret).status_code == 200
    location, reply = messages_of(service, channel)
    assert location.attachments[0]["data"]["location"] == {
        "latitude": 37.483307, "longitude": -122.148981, "name": "Main office",
        "address": "1 Hacker Way, Menlo Park, CA 94025", "url": "https://www.example.com"}
    assert reply.attachments[0]["data"]["interactive"]["list_reply"]["id"] == "priority_express"


def test_unicode_text_and_names_are_stored_as_sent(service, tenant):
    channel = whatsapp_channel(tenant)
    r = post_meta(service, "whatsapp", whatsapp_body(channel, "text_unicode.json"), channel.secret)
    assert r.status_code == 200
    [message] = messages_of(service, channel)
    assert message.content == "Grüße aus Köln — ¿tienen café? 日本語 👍"
    [contact] = contacts_of(service, tenant)
    assert (contact.name, contact.phone) == ("Zoë Ångström", "+4915112345678")


def test_a_batch_stores_every_message_of_every_change(service, tenant):
    channel = whatsapp_channel(tenant)
    # The batch's second entry is addressed to a number connected elsewhere (or nowhere).
    r = post_meta(service, "whatsapp", whatsapp_body(channel, "batch.json"), channel.secret)

    assert r.status_code == 200, r.text
    stored = messages_of(service, channel)
    assert [m.external_id for m in stored] == ["wamid.BATCH.1", "wamid.BATCH.2", "wamid.BATCH.3"]
    assert [m.content_type for m in stored] == ["text", "text", "image"]
    people = {c.phone: c for c in contacts_of(service, tenant)}
    assert set(people) == {"+16505551234", "+16315551181"}
    assert people["+16315551181"].name == "Pablo Morales"
    # Two senders, two conversations; Sheena's holds both of her messages.
    convs = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert len(convs) == 2
    sheena = next(c for c in convs if c.contact_id == people["+16505551234"].id)
    assert sheena.unread_count == 2
    assert len(events_of(service, tenant.org_id, "message.received")) == 3


def test_a_batch_for_two_connected_numbers_reaches_both(service, tenant):
    first = whatsapp_channel(tenant)
    second = whatsapp_channel(tenant, app_secret=first.secret)
    body = whatsapp_body(first, "batch.json").replace(b"106540352242923", second.key.encode())

    r = post_meta(service, "whatsapp", body, first.secret)

    assert r.status_code == 200, r.text
    assert [m.external_id for m in messages_of(service, second)] == ["wamid.BATCH.4"]
    assert len(messages_of(service, first)) == 3


def test_a_status_only_delivery_moves_our_message_forward(service, tenant):
    channel = whatsapp_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    [inbound] = messages_of(service, channel)
    ours = outbound(service, inbound, "wamid.OURS.1")

    delivered = post_meta(service, "whatsapp", whatsapp_status(channel, "wamid.OURS.1",
                                                               "delivered"), channel.secret)
    assert delivered.status_code == 200
    assert delivered.json()["updated"] == 1
    assert message_by_id(service, ours.id).status == "delivered"

    # A late "sent" arrives after "delivered": the status never moves back.
    late = post_meta(service, "whatsapp", whatsapp_status(channel, "wamid.OURS.1", "sent"),
                     channel.secret)
    assert late.status_code == 200
    assert message_by_id(service, ours.id).status == "delivered"

    post_meta(service, "whatsapp", whatsapp_status(channel, "wamid.OURS.1", "read"),
              channel.secret)
    assert message_by_id(service, ours.id).status == "read"
    moves = [e.data["status"] for e in events_of(service, tenant.org_id, "message.status")]
    assert moves == ["delivered", "read"]
    # The status webhooks stored no message of their own.
    assert len(messages_of(service, channel)) == 2


def test_a_failed_status_keeps_the_platform_error(service, tenant):
    channel = whatsapp_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    [inbound] = messages_of(service, channel)
    body = whatsapp_body(channel, "status_failed.json")
    wamid = json.loads(body)["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    ours = outbound(service, inbound, wamid)

    assert post_meta(service, "whatsapp", body, channel.secret).status_code == 200

    failed = message_by_id(service, ours.id)
    assert failed.status == "failed"
    assert failed.error_code == "131047"
    assert failed.error is not None and "24 hours" in failed.error


def test_a_statuses_batch_applies_each_status_in_order(service, tenant):
    channel = whatsapp_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    [inbound] = messages_of(service, channel)
    one = outbound(service, inbound, "wamid.STATUS.1")
    two = outbound(service, inbound, "wamid.STATUS.2")

    r = post_meta(service, "whatsapp", whatsapp_body(channel, "statuses_batch.json"),
                  channel.secret)

    assert r.status_code == 200
    assert message_by_id(service, one.id).status == "delivered"
    assert message_by_id(service, two.id).status == "read"


def test_a_status_about_a_message_we_never_sent_is_acknowledged_and_ignored(service, tenant):
    channel = whatsapp_channel(tenant)
    r = post_meta(service, "whatsapp", whatsapp_body(channel, "status_delivered.json"),
                  channel.secret)
    assert r.status_code == 200
    assert r.json()["ignored"] == 1
    assert nothing_stored(service, tenant)


# -- Instagram ---------------------------------------------------------------------

INSTAGRAM_SENDER = "1254459154682919"


INSTAGRAM_FILES: dict[str, tuple[list[tuple[str, str]], int]] = {
    # file: ([(content_type, content) of each message stored], platform time in ms)
    "text.json": ([("text", "Do you ship to Canada?")], 1569262485349),
    "attachments.json": ([("image", "")], 1569262485349),
    "reply_to.json": ([("story_reply", "Replied to your story: Love this one!"),
                       ("text", "And what about the price?")], 1569262485349),
    "postback.json": ([("postback", "Track my order")], 1569262485349),
    "unsupported.json": ([("unsupported", "Unsupported message")], 1569262485349),
    "reaction.json": ([("reaction", "❤️")], 1569262495000),
}


@pytest.mark.parametrize("name", list(INSTAGRAM_FILES))
def test_a_signed_instagram_delivery_stores_the_message(service, tenant, name):
    expected, millis = INSTAGRAM_FILES[name]
    channel = instagram_channel(tenant)

    r = post_meta(service, "instagram", instagram_body(channel, name), channel.secret)

    assert r.status_code == 200, r.text
    stored = messages_of(service, channel)
    assert [(m.content_type, m.content) for m in stored] == expected
    assert stored[0].platform_timestamp == datetime.fromtimestamp(millis / 1000, UTC)
    assert {m.direction for m in stored} == {"inbound"}
    [contact] = contacts_of(service, tenant)
    assert identities_of(service, tenant) == [("instagram", INSTAGRAM_SENDER, contact.id)]
    assert contact.phone is None


def test_instagram_attachments_are_kept(service, tenant):
    channel = instagram_channel(tenant)
    r = post_meta(service, "instagram", instagram_body(channel, "attachments.json"),
                  channel.secret)
    assert r.status_code == 200
    [message] = messages_of(service, channel)
    assert message.content_type == "image"
    assert [a["type"] for a in message.attachments] == ["image", "video"]
    assert message.attachments[0]["url"].startswith("https://lookaside.fbsbx.com/")


def test_instagram_postbacks_reactions_and_deletions(service, tenant):
    channel = instagram_channel(tenant)
    for name in ("text.json", "postback.json", "reaction.json"):
        r = post_meta(service, "instagram", instagram_body(channel, name), channel.secret)
        assert r.status_code == 200, (name, r.text)
    text, postback, reaction = messages_of(service, channel)
    assert postback.content_type == "postback"
    assert reaction.content_type == "reaction"
    assert reaction.content == "❤️"

    deleted = json.loads(instagram_body(channel, "deleted.json"))
    deleted["entry"][0]["messaging"][0]["message"]["mid"] = text.external_id
    body = json.dumps(deleted).encode()
    assert post_meta(service, "instagram", body, channel.secret).json()["updated"] == 1
    gone = message_by_id(service, text.id)
    assert (gone.content_type, gone.content) == ("deleted", None)
    assert [e.data["id"] for e in events_of(service, tenant.org_id, "message.deleted")] == [
        text.id]


def test_an_instagram_batch_stores_every_message(service, tenant):
    channel = instagram_channel(tenant)
    r = post_meta(service, "instagram", instagram_body(channel, "batch.json"), channel.secret)
    assert r.status_code == 200, r.text
    assert [m.content for m in messages_of(service, channel)] == ["First", "Second"]


def test_an_echo_of_our_own_send_is_matched_not_stored_as_inbound(service, tenant):
    channel = instagram_channel(tenant)
    post_meta(service, "instagram", instagram_body(channel, "text.json"), channel.secret)
    [inbound] = messages_of(service, channel)
    echo = instagram_body(channel, "echo.json")
    mid = json.loads(echo)["entry"][0]["messaging"][0]["message"]["mid"]
    ours = outbound(service, inbound, mid)
    before = event_types(service, tenant.org_id)

    r = post_meta(service, "instagram", echo, channel.secret)

    assert r.status_code == 200
    assert r.json()["stored"] == 0
    assert [m.id for m in messages_of(service, channel)] == [inbound.id, ours.id]
    assert event_types(service, tenant.org_id) == before


def test_an_echo_that_overtakes_the_answer_to_our_send_is_still_ours(service, tenant):
    """Instagram may echo a send before its answer to that send reached the worker."""
    channel = instagram_channel(tenant)
    post_meta(service, "instagram", instagram_body(channel, "text.json"), channel.secret)
    [inbound] = messages_of(service, channel)
    in_flight = outbound(service, inbound, None, status="sent")
    # Claimed by the delivery worker, and sent: the platform has not answered yet.
    service.run(set_fields(service, in_flight.id, content="Yes, we ship to Canada.",
                           status="queued", attempt_started_at=utcnow()))
    before = event_types(service, tenant.org_id)

    r = post_meta(service, "instagram", instagram_body(channel, "echo.json"), channel.secret)

    assert r.status_code == 200
    assert [m.id for m in messages_of(service, channel)] == [inbound.id, in_flight.id]
    assert event_types(service, tenant.org_id) == before
    # The send completes as the worker would record it.
    service.run(set_fields(service, in_flight.id, status="sent", attempt_started_at=None))


def test_an_echo_of_a_message_sent_from_the_instagram_app_joins_the_conversation(
    service, tenant
):
    channel = instagram_channel(tenant)
    post_meta(service, "instagram", instagram_body(channel, "text.json"), channel.secret)

    r = post_meta(service, "instagram", instagram_body(channel, "echo.json"), channel.secret)

    assert r.status_code == 200
    inbound, echoed = messages_of(service, channel)
    assert (echoed.direction, echoed.status) == ("outbound", "sent")
    assert echoed.content == "Yes, we ship to Canada."
    assert echoed.conversation_id == inbound.conversation_id
    assert events_of(service, tenant.org_id, "message.received")[-1].data["id"] == inbound.id


def test_an_instagram_read_receipt_marks_our_message_read(service, tenant):
    channel = instagram_channel(tenant)
    post_meta(service, "instagram", instagram_body(channel, "text.json"), channel.secret)
    [inbound] = messages_of(service, channel)
    read = instagram_body(channel, "read.json")
    mid = json.loads(read)["entry"][0]["messaging"][0]["read"]["mid"]
    ours = outbound(service, inbound, mid)

    assert post_meta(service, "instagram", read, channel.secret).status_code == 200

    assert message_by_id(service, ours.id).status == "read"


# -- Twilio SMS --------------------------------------------------------------------


def test_a_signed_twilio_sms_is_stored_and_answered_with_empty_twiml(service, tenant):
    channel = sms_channel(tenant)
    r = post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), channel.secret)

    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    assert r.text == TWIML
    [message] = messages_of(service, channel)
    assert message.external_id == "SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
    assert (message.content_type, message.content) == (
        "text", "Hi, is the store open on Sunday? Ça va?")
    assert message.attachments == []
    assert message.platform_timestamp is not None
    [contact] = contacts_of(service, tenant)
    assert contact.phone == "+15558675310"
    assert identities_of(service, tenant) == [("sms", "+15558675310", contact.id)]
    # Every field Twilio sent is kept with the message.
    assert message.platform_data["MessageSid"] == message.external_id
    assert message.platform_data["NumMedia"] == "0"
    assert "AccountSid" in message.platform_data


def test_a_twilio_mms_keeps_every_media_item(service, tenant):
    channel = sms_channel(tenant)
    r = post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "mms.txt"), channel.secret)

    assert r.status_code == 200, r.text
    [message] = messages_of(service, channel)
    assert message.content == "Here are the photos"
    assert message.content_type == "image"
    assert [(a["type"], a["mime_type"]) for a in message.attachments] == [
        ("image", "image/jpeg"), ("video", "video/mp4")]
    assert all(a["url"].startswith("https://api.twilio.com/") for a in message.attachments)


def test_twilio_status_callbacks_move_our_message_forward(service, tenant):
    channel = sms_channel(tenant)
    post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), channel.secret)
    [inbound] = messages_of(service, channel)
    ours = outbound(service, inbound, "SM3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f")

    for name, expected in [("status_queued.txt", "sent"), ("status_delivered.txt", "delivered"),
                           ("status_sent.txt", "delivered")]:
        r = post_twilio(service, "/webhooks/twilio/status", sms_body(channel, name),
                        channel.secret)
        assert r.status_code == 200, (name, r.text)
        assert r.text == TWIML
        assert message_by_id(service, ours.id).status == expected, name


@pytest.mark.parametrize("name, code, error", [
    ("status_undelivered.txt", "30003", "Unreachable destination handset"),
    ("status_failed.txt", "30008", "Unknown error"),
    ("status_undelivered_30007.txt", "30007", "Message filtered"),
])
def test_an_sms_twilio_could_not_deliver_fails_with_its_error_code_and_text(
    service, tenant, name, code, error
):
    channel = sms_channel(tenant)
    post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), channel.secret)
    [inbound] = messages_of(service, channel)
    sid = "SM3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
    ours = outbound(service, inbound, sid)

    r = post_twilio(service, "/webhooks/twilio/status",
                    sms_body(channel, name, MessageSid=sid, SmsSid=sid), channel.secret)

    assert r.status_code == 200
    failed = message_by_id(service, ours.id)
    assert (failed.status, failed.error_code, failed.error) == ("failed", code, error)
    # Agents read the same words.
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    listed = tenant.api.get(f"/api/conversations/{conv.id}/messages").json()["data"]
    assert [(m["error_code"], m["error"]) for m in listed if m["id"] == ours.id] == [(code, error)]


def test_twilio_signatures_are_checked_over_the_public_url(database_url, loop, platform, tenant):
    """Behind a proxy the service rebuilds the URL Twilio called from INBOX_PUBLIC_URL."""
    channel = sms_channel(tenant)
    settings = make_settings(database_url, public_url="https://inbox.example.com",
                             graph_api_url=platform.base_url, twilio_api_url=platform.base_url)
    server = LiveServer(create_app(settings), loop)
    server.start()
    try:
        path = "/webhooks/twilio/sms?source=twilio"
        body = sms_body(channel, "sms.txt")
        with httpx.Client(base_url=server.url) as web:
            local = web.post(path, content=body,
                             headers=twilio_headers(f"{server.url}{path}", body, channel.secret))
            assert local.status_code == 401
            public = web.post(path, content=body, headers=twilio_headers(
                f"https://inbox.example.com{path}", body, channel.secret))
            assert public.status_code == 200, public.text
            assert public.text == TWIML
    finally:
        server.stop()
    assert len(messages_of(tenant.service, channel)) == 1


# -- the generic source and lead forms ------------------------------------------------


def test_a_generic_message_with_an_api_key_is_stored(service, tenant):
    key = tenant.api_key(scopes=("ingest",))
    web = service.client()
    r = web.post("/webhooks/messages/incoming", content=payload("generic", "message.json"),
                 headers={"X-Api-Key": key, "Content-Type": "application/json"})

    assert r.status_code == 200, r.text
    [channel] = rows(service, Channel, col(Channel.organization_id) == tenant.org_id)
    assert channel.kind == "generic"
    [message] = rows(service, Message, col(Message.channel_id) == channel.id)
    assert (message.external_id, message.content) == ("crm-7781", "I'd like a quote for 20 units.")
    assert message.platform_timestamp == datetime(2026, 1, 15, 16, 35, tzinfo=UTC)
    [contact] = contacts_of(service, tenant)
    assert (contact.name, contact.phone) == ("Dana Scully", "+15550123456")
    [lead] = rows(service, Lead, col(Lead.organization_id) == tenant.org_id)
    assert lead.source == "whatsapp"

    again = web.post("/webhooks/messages/incoming", content=payload("generic", "message.json"),
                     headers={"Authorization": f"Bearer {key}"})
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "ik_not-a-key"},
                                     {"Authorization": "Bearer ik_not-a-key"}])
def test_a_generic_message_without_a_valid_api_key_is_refused(service, tenant, headers):
    r = service.client().post("/webhooks/messages/incoming",
                              content=payload("generic", "message.json"), headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert nothing_stored(service, tenant)


def form_key(tenant: Any) -> str:
    r = tenant.api.post("/api/organization/lead-form-key")
    assert r.status_code == 200, r.text
    return str(r.json()["lead_form_key"])


def test_a_json_lead_form_creates_a_lead(service, tenant):
    key = form_key(tenant)
    r = service.client().post("/webhooks/leads/incoming", params={"key": key},
                              content=payload("generic", "lead.json"),
                              headers={"Content-Type": "application/json"})

    assert r.status_code == 201, r.text
    assert r.json()["status"] == "received"
    assert r.headers["access-control-allow-origin"] == "*"
    [lead] = rows(service, Lead, col(Lead.organization_id) == tenant.org_id)
    assert lead.id == r.json()["id"]
    assert (lead.name, lead.email, lead.phone, lead.company, lead.source) == (
        "Fox Mulder", "fox.mulder@example.com", "+12025550143", "FBI", "web_form")
    assert lead.notes is not None and "Please call me back" in lead.notes
    assert "utm_source: newsletter" in lead.notes
    [event] = events_of(service, tenant.org_id)
    assert (event.type, event.data["id"]) == ("lead.created", lead.id)


def test_an_html_form_post_creates_a_lead(service, tenant):
    key = form_key(tenant)
    r = service.client().post("/webhooks/leads/incoming", headers={
        "X-Form-Key": key, "Content-Type": "application/x-www-form-urlencoded"},
        content=payload("generic", "lead_form.txt"))

    assert r.status_code == 201, r.text
    [lead] = rows(service, Lead, col(Lead.organization_id) == tenant.org_id)
    assert (lead.name, lead.email, lead.phone) == ("Dana Scully", "dana@example.com",
                                                   "+12025550199")


def test_a_landing_page_on_any_origin_may_post_the_lead_form(
    database_url, loop, platform, tenant
):
    """The API's CORS allow-list (INBOX_ALLOWED_ORIGINS) does not apply to the lead form."""
    key = form_key(tenant)
    settings = make_settings(database_url, allowed_origins=["https://app.example.com"],
                             graph_api_url=platform.base_url, twilio_api_url=platform.base_url)
    server = LiveServer(create_app(settings), loop)
    server.start()
    try:
        origin = {"Origin": "https://landing.example.org"}
        with httpx.Client(base_url=server.url) as web:
            preflight = web.options("/webhooks/leads/incoming", headers={
                **origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-form-key"})
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "*"
            assert "x-form-key" in preflight.headers["access-control-allow-headers"].lower()
            posted = web.post("/webhooks/leads/incoming", json={"name": "Lena"},
                              headers={**origin, "X-Form-Key": key})
            assert posted.status_code == 201, posted.text
            assert posted.headers["access-control-allow-origin"] == "*"
            # The API itself still answers only its allowed origins.
            api = web.options("/api/leads", headers={
                **origin, "Access-Control-Request-Method": "GET"})
            assert api.status_code == 400
    finally:
        server.stop()


def test_a_lead_form_with_a_bad_key_is_refused(service, tenant):
    form_key(tenant)
    web = service.client()
    for params, headers in [({"key": "lf_wrong"}, {}), ({}, {"X-Form-Key": "lf_wrong"}), ({}, {})]:
        r = web.post("/webhooks/leads/incoming", params=params, headers=headers,
                     json={"name": "Eve", "email": "eve@example.com"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert nothing_stored(service, tenant)


def test_a_rotated_form_key_stops_working(service, tenant):
    old = form_key(tenant)
    form_key(tenant)
    r = service.client().post("/webhooks/leads/incoming", params={"key": old},
                              json={"name": "Late Larry"})
    assert r.status_code == 401


def test_a_lead_form_with_an_invalid_email_names_the_field(service, tenant):
    key = form_key(tenant)
    r = service.client().post("/webhooks/leads/incoming", params={"key": key},
                              json={"name": "Eve", "email": "not-an-email"})

    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "MALFORMED_REQUEST"
    assert [f["field"] for f in error["details"]["fields"]] == ["email"]
    assert nothing_stored(service, tenant)


# -- refusals: nothing is stored ----------------------------------------------------


@pytest.mark.parametrize("signature", ["missing", "wrong secret", "tampered", "garbage"])
def test_a_delivery_without_a_valid_signature_is_refused(service, tenant, signature):
    channel = whatsapp_channel(tenant)
    body = whatsapp_body(channel, "text.json")
    if signature == "missing":
        r = post_meta(service, "whatsapp", body, None)
    elif signature == "wrong secret":
        r = post_meta(service, "whatsapp", body, "not-the-app-secret")
    elif signature == "tampered":
        headers = {"X-Hub-Signature-256": meta_signature(channel.secret, body),
                   "Content-Type": "application/json"}
        r = service.client().post("/webhooks/whatsapp", headers=headers,
                                  content=body.replace(b"another color", b"a refund, now"))
    else:
        r = service.client().post("/webhooks/whatsapp", content=body,
                                  headers={"X-Hub-Signature-256": "md5=abc"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    assert nothing_stored(service, tenant)


@pytest.mark.parametrize("kind", ["instagram", "sms"])
def test_unsigned_instagram_and_twilio_deliveries_are_refused(service, tenant, kind):
    if kind == "instagram":
        channel = instagram_channel(tenant)
        r = post_meta(service, "instagram", instagram_body(channel, "text.json"), "wrong")
    else:
        channel = sms_channel(tenant)
        r = post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), "wrong")
    assert r.status_code == 401
    assert nothing_stored(service, tenant)


def test_after_a_secret_rotation_the_previous_secret_is_still_accepted(service, tenant):
    channel = whatsapp_channel(tenant)
    old = channel.secret
    r = tenant.api.patch(f"/api/channels/{channel.id}", json={
        "settings": {"app_secret": "the-new-app-secret", "previous_app_secrets": [old]}})
    assert r.status_code == 200, r.text

    signed_old = post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), old)
    signed_new = post_meta(service, "whatsapp", whatsapp_body(channel, "image.json"),
                           "the-new-app-secret")

    assert (signed_old.status_code, signed_new.status_code) == (200, 200)
    assert len(messages_of(service, channel)) == 2

    tenant.api.patch(f"/api/channels/{channel.id}", json={"settings": {"previous_app_secrets": []}})
    retired = post_meta(service, "whatsapp", whatsapp_body(channel, "video.json"), old)
    assert retired.status_code == 401


@pytest.mark.parametrize("body", [b'{"object": "whatsapp_business_account", "entry": [',
                                  b"\xff\xfe not utf-8", b"[]", b'"a string"'])
def test_a_malformed_body_is_a_400_with_the_error_envelope(service, tenant, body):
    channel = whatsapp_channel(tenant)
    r = post_meta(service, "whatsapp", body, channel.secret)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "MALFORMED_REQUEST"
    assert error["message"]
    assert nothing_stored(service, tenant)


def test_a_malformed_message_costs_only_itself(service, tenant, caplog):
    channel = whatsapp_channel(tenant)
    body = json.loads(whatsapp_body(channel, "batch.json"))
    # The third message of the batch has a timestamp no parser can read.
    body["entry"][0]["changes"][0]["value"]["messages"][2]["timestamp"] = {"when": "now"}
    raw = json.dumps(body).encode()
    with caplog.at_level("WARNING", logger="inbox.webhooks"):
        r = post_meta(service, "whatsapp", raw, channel.secret)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 2
    assert r.json()["ignored"] >= 1
    assert [m.external_id for m in messages_of(service, channel)] == [
        "wamid.BATCH.1", "wamid.BATCH.2"]
    where = "entry[0].changes[0].value.messages[2].timestamp"
    assert [rec for rec in caplog.records if where in rec.getMessage()
            and rec.levelname == "WARNING"]


def test_a_body_whose_entries_are_no_list_is_acknowledged(service, tenant):
    channel = whatsapp_channel(tenant)
    r = post_meta(service, "whatsapp", b'{"entry": "not a list"}', channel.secret)
    assert r.status_code == 200
    assert r.json() == {"stored": 0, "duplicates": 0, "updated": 0, "ignored": 1}
    assert nothing_stored(service, tenant)


def test_a_delivery_for_an_unknown_channel_is_refused_unless_signed_by_a_known_app(
    service, tenant
):
    channel = whatsapp_channel(tenant)
    stranger = whatsapp_body(channel, "text.json").replace(channel.key.encode(), b"999000111")
    # Signed by no secret configured here: the same answer as a forged delivery.
    r = post_meta(service, "whatsapp", stranger, "some-other-apps-secret")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    # Signed by our app, for a number not connected here: acknowledged, nothing stored.
    r = post_meta(service, "whatsapp", stranger, channel.secret)
    assert r.status_code == 200
    assert r.json() == {"stored": 0, "duplicates": 0, "updated": 0, "ignored": 1}

    # Twilio alike, by the auth tokens configured here.
    sms = sms_channel(tenant)
    unknown_number = sms_body(sms, "sms.txt", To="+14155550000")
    r = post_twilio(service, "/webhooks/twilio/sms", unknown_number, channel.secret)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    r = post_twilio(service, "/webhooks/twilio/sms", unknown_number, sms.secret)
    assert (r.status_code, r.text) == (200, TWIML)
    assert nothing_stored(service, tenant)


def test_a_delivery_for_a_deactivated_channel_is_a_401(service, tenant):
    channel = whatsapp_channel(tenant)
    r = tenant.api.patch(f"/api/channels/{channel.id}", json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False

    r = post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)

    # Its secret no longer vouches for anything here.
    assert r.status_code == 401
    assert nothing_stored(service, tenant)


def test_a_channel_the_server_already_knows_is_refused_once_deactivated(service, tenant):
    channel = whatsapp_channel(tenant)
    first = post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    assert first.status_code == 200 and first.json()["stored"] == 1
    later = whatsapp_body(channel, "image.json")

    tenant.api.patch(f"/api/channels/{channel.id}", json={"is_active": False})
    assert post_meta(service, "whatsapp", later, channel.secret).status_code == 401
    tenant.api.patch(f"/api/channels/{channel.id}", json={"is_active": True})
    assert post_meta(service, "whatsapp", later, channel.secret).json()["stored"] == 1

    # A new secret counts at once too: the old one no longer signs.
    new = {"app_secret": "rotated-app-secret"}
    tenant.api.patch(f"/api/channels/{channel.id}", json={"settings": new})
    again = whatsapp_body(channel, "audio.json")
    assert post_meta(service, "whatsapp", again, channel.secret).status_code == 401
    assert post_meta(service, "whatsapp", again, new["app_secret"]).json()["stored"] == 1


def test_a_body_over_four_mebibytes_is_a_413(service, tenant):
    # The webhook limit (INBOX_MAX_WEBHOOK_BODY_BYTES): above the 3 MB WhatsApp documents.
    limit = 4 * 1024 * 1024
    channel = whatsapp_channel(tenant)
    text = whatsapp_body(channel, "text.json")
    padding = b" " * (limit + 1 - len(text))
    body = text + padding
    assert len(body) == limit + 1

    r = post_meta(service, "whatsapp", body, channel.secret)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Any:
        yield text
        for _ in range(65):
            yield b" " * 65536

    streamed = service.client().post("/webhooks/whatsapp", content=chunks(),
                                     headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert nothing_stored(service, tenant)

    # Exactly at the limit is still a delivery.
    at_limit = text + b" " * (limit - len(text))
    assert post_meta(service, "whatsapp", at_limit, channel.secret).status_code == 200


def test_an_unreachable_database_is_a_503_so_the_platform_retries(loop, platform):
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/inbox"
    settings = make_settings(dead, graph_api_url=platform.base_url,
                             twilio_api_url=platform.base_url)
    server = LiveServer(create_app(settings), loop)
    server.start()
    try:
        body = payload("whatsapp", "text.json")
        r = httpx.post(f"{server.url}/webhooks/whatsapp", content=body,
                       headers={"X-Hub-Signature-256": "sha256=00"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    finally:
        server.stop()


# -- retries and people ---------------------------------------------------------------


def test_a_retried_delivery_is_a_no_op_that_still_answers_200(service, tenant):
    channel = whatsapp_channel(tenant)
    body = whatsapp_body(channel, "batch.json")
    first = post_meta(service, "whatsapp", body, channel.secret)
    events = events_of(service, tenant.org_id)
    [conv_before, *_] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)

    retry = post_meta(service, "whatsapp", body, channel.secret)

    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json()["stored"] == 0 and retry.json()["duplicates"] == 3
    assert len(messages_of(service, channel)) == 3
    assert events_of(service, tenant.org_id) == events
    [conv_after, *_] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert conv_after.unread_count == conv_before.unread_count


def test_a_retried_status_is_a_no_op(service, tenant):
    channel = whatsapp_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    [inbound] = messages_of(service, channel)
    outbound(service, inbound, "wamid.OURS.2")
    body = whatsapp_status(channel, "wamid.OURS.2", "delivered")
    post_meta(service, "whatsapp", body, channel.secret)
    events = events_of(service, tenant.org_id)

    assert post_meta(service, "whatsapp", body, channel.secret).status_code == 200
    assert events_of(service, tenant.org_id) == events


def test_a_retried_twilio_message_is_a_no_op(service, tenant):
    channel = sms_channel(tenant)
    body = sms_body(channel, "sms.txt")
    post_twilio(service, "/webhooks/twilio/sms", body, channel.secret)
    events = events_of(service, tenant.org_id)

    again = post_twilio(service, "/webhooks/twilio/sms", body, channel.secret)

    assert (again.status_code, again.text) == (200, TWIML)
    assert len(messages_of(service, channel)) == 1
    assert events_of(service, tenant.org_id) == events


def test_the_same_person_by_sms_and_by_whatsapp_is_one_contact(service, tenant):
    whatsapp = whatsapp_channel(tenant)
    sms = sms_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_body(whatsapp, "text.json"), whatsapp.secret)
    r = post_twilio(service, "/webhooks/twilio/sms",
                    sms_body(sms, "sms.txt", From="+16505551234"), sms.secret)
    assert r.status_code == 200, r.text

    [contact] = contacts_of(service, tenant)
    assert contact.phone == "+16505551234"
    assert sorted(identities_of(service, tenant)) == [
        ("sms", "+16505551234", contact.id), ("whatsapp", SHEENA, contact.id)]
    convs = rows(service, Conversation, col(Conversation.organization_id) == tenant.org_id)
    assert sorted(c.channel_id for c in convs) == sorted([whatsapp.id, sms.id])
    assert {c.contact_id for c in convs} == {contact.id}
    assert len(rows(service, Lead, col(Lead.organization_id) == tenant.org_id)) == 1
    assert len(events_of(service, tenant.org_id, "contact.created")) == 1
    # One history: the contact's messages of both channels.
    history = rows(service, Message, col(Message.sender_contact_id) == contact.id)
    assert sorted(m.channel_id for m in history) == sorted([whatsapp.id, sms.id])


def test_a_first_time_sender_becomes_a_lead(service, tenant):
    channel = whatsapp_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)

    [lead] = rows(service, Lead, col(Lead.organization_id) == tenant.org_id)
    [contact] = contacts_of(service, tenant)
    assert (lead.source, lead.contact_id, lead.name, lead.phone) == (
        "whatsapp", contact.id, "Sheena Nelson", "+16505551234")
    types = event_types(service, tenant.org_id)
    creations = [t for t in types if t != "conversation.updated"]
    assert creations == ["lead.created", "contact.created", "conversation.created",
                         "message.received"]
    [received] = events_of(service, tenant.org_id, "message.received")
    [message] = messages_of(service, channel)
    assert received.data["id"] == message.id
    assert received.data["content"] == "Does it come in another color?"

    # Writing again is not a new lead, contact or conversation.
    post_meta(service, "whatsapp", whatsapp_text(channel, "wamid.AGAIN", "Any news?"),
              channel.secret)
    assert len(rows(service, Lead, col(Lead.organization_id) == tenant.org_id)) == 1
    new = event_types(service, tenant.org_id)[len(types):]
    assert new == ["message.received", "conversation.updated"]


def test_messages_are_ordered_by_the_platform_time_not_arrival(service, tenant):
    channel = whatsapp_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_text(channel, "wamid.LATE", "second",
                                                 timestamp=1749416400), channel.secret)
    post_meta(service, "whatsapp", whatsapp_text(channel, "wamid.EARLY", "first",
                                                 timestamp=1749416300), channel.secret)
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    page = tenant.api.get(f"/api/conversations/{conv.id}/messages").json()
    assert [m["content"] for m in page["data"]] == ["first", "second"]
    assert tenant.api.get(f"/api/conversations/{conv.id}").json()["last_message"]["preview"] == (
        "second")


def test_messages_of_a_closed_conversation_open_a_new_one(service, tenant):
    channel = whatsapp_channel(tenant)
    post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    tenant.api.patch(f"/api/conversations/{conv.id}", json={"status": "closed"})

    post_meta(service, "whatsapp", whatsapp_text(channel, "wamid.BACK", "Me again"),
              channel.secret)

    convs = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert [c.status for c in convs] == ["closed", "open"]
    assert len({c.contact_id for c in convs}) == 1
