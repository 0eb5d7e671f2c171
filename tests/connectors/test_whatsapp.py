from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from connectors.errors import PayloadError, SendError, SignatureError
from connectors.signatures import meta_signature
from connectors.types import (
    InboundMessage,
    OutboundMessage,
    Reaction,
    StatusUpdate,
    Unhandled,
    Unreadable,
    WebhookRequest,
)
from connectors.whatsapp import WhatsAppAdapter
from tests.connectors.fake_platform import (
    FakePlatform,
    graph_error,
    rate_limited,
    server_error,
    slow,
    whatsapp_outside_window,
)
from tests.connectors.helpers import (
    WHATSAPP_SECRET,
    instagram_settings,
    meta_request,
    payload,
    whatsapp_settings,
)

adapter = WhatsAppAdapter()
PNID = "106540352242922"


def parse(name: str) -> list[object]:
    return list(adapter.parse(meta_request(payload("whatsapp", name), WHATSAPP_SECRET)))


def only_message(name: str) -> InboundMessage:
    events = parse(name)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, InboundMessage)
    return event


# -- inbound ------------------------------------------------------------------


def test_text() -> None:
    message = only_message("text.json")
    assert message == InboundMessage(
        platform="whatsapp",
        channel_key=PNID,
        sender_id="16505551234",
        external_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        timestamp=datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC),
        content="Does it come in another color?",
        content_type="text",
        sender_name="Sheena Nelson",
        sender_phone="+16505551234",
    )


@pytest.mark.parametrize(
    ("name", "kind", "mime", "caption", "content", "extra"),
    [
        ("image.json", "image", "image/jpeg", "Shipment arrived damaged", None, {}),
        ("audio.json", "audio", "audio/ogg; codecs=opus", None, "Voice message", {"voice": True}),
        ("video.json", "video", "video/mp4", "How do I fix this?", None, {}),
        (
            "document.json",
            "document",
            "application/pdf",
            "Invoice for March",
            None,
            {"filename": "invoice-0042.pdf"},
        ),
        ("sticker.json", "sticker", "image/webp", None, "Sticker", {"animated": False}),
    ],
)
def test_media(
    name: str,
    kind: str,
    mime: str,
    caption: str | None,
    content: str | None,
    extra: dict[str, object],
) -> None:
    message = only_message(name)
    assert message.content_type == kind
    # What has no caption still reads as something: a voice message, a sticker.
    assert message.content == (caption or content)
    [attachment] = message.attachments
    assert attachment["type"] == kind
    assert attachment["mime_type"] == mime
    assert attachment["media_id"].startswith("10033834213872")
    assert attachment["url"].startswith("https://lookaside.fbsbx.com/")
    assert attachment.get("caption") == caption
    for key, value in extra.items():
        assert attachment[key] == value


def test_location() -> None:
    message = only_message("location.json")
    assert message.content_type == "location"
    assert message.content == "Main office, 1 Hacker Way, Menlo Park, CA 94025"
    assert message.raw["location"] == {
        "latitude": 37.483307,
        "longitude": -122.148981,
        "name": "Main office",
        "address": "1 Hacker Way, Menlo Park, CA 94025",
        "url": "https://www.example.com",
    }


def test_shared_contacts() -> None:
    message = only_message("contacts.json")
    assert message.content_type == "contacts"
    assert message.content == "Barbara J. Johnson"
    [card] = message.raw["contacts"]
    assert card["phones"][0]["wa_id"] == "19405551234"
    # The sender is still the person writing, not the shared card.
    assert message.sender_id == "16505551234"
    assert message.sender_name == "Sheena Nelson"


def test_interactive_button_reply() -> None:
    message = only_message("interactive_button_reply.json")
    assert message.content_type == "interactive"
    assert message.content == "Cancel"
    assert message.raw["interactive"]["button_reply"]["id"] == "cancel-button"
    assert message.reply_to == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="


def test_interactive_list_reply() -> None:
    message = only_message("interactive_list_reply.json")
    assert message.content == "Priority Mail Express — Next Day to 2 Days"
    assert message.raw["interactive"]["list_reply"] == {
        "id": "priority_express",
        "title": "Priority Mail Express",
        "description": "Next Day to 2 Days",
    }


def test_template_button() -> None:
    message = only_message("button.json")
    assert message.content_type == "button"
    assert message.content == "Unsubscribe from Promos"
    assert message.raw["button"]["payload"] == "Unsubscribe from Promos"
    assert message.reply_to is not None


def test_reaction_and_its_removal() -> None:
    [reaction] = parse("reaction.json")
    assert isinstance(reaction, Reaction)
    assert reaction.emoji == "\U0001f44d"
    assert reaction.target_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    assert reaction.sender_id == "16505551234"
    assert reaction.sender_name == "Sheena Nelson"
    [removed] = parse("reaction_removed.json")
    assert isinstance(removed, Reaction)
    assert removed.emoji is None


def test_unsupported_message_is_kept() -> None:
    message = only_message("unsupported.json")
    assert message.content_type == "unsupported"
    assert message.content == (
        "Unsupported message: Message type unknown: Message type is currently not supported."
    )
    assert message.raw["errors"][0]["code"] == 131051


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("status_sent.json", "sent"),
        ("status_delivered.json", "delivered"),
        ("status_read.json", "read"),
    ],
)
def test_statuses(name: str, status: str) -> None:
    [update] = parse(name)
    assert isinstance(update, StatusUpdate)
    assert update.status == status
    assert update.external_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    assert update.channel_key == PNID
    assert update.recipient_id == "16505551234"
    assert update.error_code is None


def test_failed_status_carries_the_error() -> None:
    [update] = parse("status_failed.json")
    assert isinstance(update, StatusUpdate)
    assert update.status == "failed"
    assert update.error_code == "131047"
    assert update.error_message is not None
    assert update.error_message.startswith("Re-engagement message: Message failed to send")
    assert update.timestamp == datetime.fromtimestamp(1750263800, UTC)


def test_batch_of_entries_changes_messages_and_statuses() -> None:
    events = parse("batch.json")
    assert [type(e).__name__ for e in events] == [
        "InboundMessage",
        "InboundMessage",
        "InboundMessage",
        "StatusUpdate",
        "InboundMessage",
    ]
    first, second, third, status, other = events
    assert isinstance(first, InboundMessage)
    assert isinstance(second, InboundMessage)
    assert isinstance(third, InboundMessage)
    assert isinstance(other, InboundMessage)
    assert (first.sender_name, second.sender_name) == ("Sheena Nelson", "Pablo Morales")
    assert second.sender_phone == "+16315551181"
    assert third.content_type == "image"
    assert isinstance(status, StatusUpdate)
    assert status.status == "delivered"
    assert other.channel_key == "106540352242923"
    assert other.sender_phone == "+447911123456"
    assert adapter.routing_keys(meta_request(payload("whatsapp", "batch.json"), None)) == [
        PNID,
        "106540352242923",
    ]


def test_status_only_delivery() -> None:
    events = parse("statuses_batch.json")
    assert all(isinstance(e, StatusUpdate) for e in events)
    assert [(e.external_id, e.status) for e in events if isinstance(e, StatusUpdate)] == [
        ("wamid.STATUS.1", "sent"),
        ("wamid.STATUS.1", "delivered"),
        ("wamid.STATUS.2", "read"),
    ]


def test_unicode_text_is_read_from_raw_utf8() -> None:
    message = only_message("text_unicode.json")
    assert message.content == "Grüße aus Köln — ¿tienen café? 日本語 👍"
    assert message.sender_name == "Zoë Ångström"
    assert message.sender_phone == "+4915112345678"


def test_unknown_fields_and_other_fields_are_acknowledged() -> None:
    body = json.loads(payload("whatsapp", "text.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["brand_new_field"] = {"x": [1, 2]}
    value["messages"][0]["new_flag"] = True
    value["messages"].append(
        {"from": "16505551234", "id": "wamid.X", "timestamp": "1749416400", "type": "hologram"}
    )
    body["entry"][0]["changes"].append({"field": "security", "value": {"event": "X"}})
    events = adapter.parse(meta_request(json.dumps(body).encode(), None))
    text, future, account = events
    assert isinstance(text, InboundMessage) and text.content == "Does it come in another color?"
    assert isinstance(future, InboundMessage)
    assert (future.content_type, future.content) == ("hologram", "Unsupported message (hologram)")
    assert account == Unhandled(
        platform="whatsapp",
        channel_key=None,
        field="security",
        where="entry[0].changes[1]",
        data={"event": "X"},
        account_id="102290129340398",
    )


def test_other_object_is_acknowledged_not_read() -> None:
    [event] = adapter.parse(meta_request(b'{"object": "page", "entry": [{"id": 1}]}', None))
    assert isinstance(event, Unhandled)
    assert event.field == "object:page"


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'"text"', b"{"])
def test_a_body_that_is_no_json_object_raises_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        adapter.parse(meta_request(body, None))
    with pytest.raises(PayloadError):
        adapter.routing_keys(meta_request(body, None))


@pytest.mark.parametrize(
    ("body", "where", "error"),
    [
        (b'{"entry": {}}', "entry", "expected an array"),
        (
            b'{"entry": [{"changes": [{"value": {"messages": [{"id": "x"}]}}]}]}',
            "entry[0].changes[0].value.messages[0].timestamp",
            "expected a Unix timestamp",
        ),
        (
            b'{"entry": [{"changes": [{"value": {"messages": [{"from": "1", "id": "x",'
            b' "timestamp": "soon"}]}}]}]}',
            "entry[0].changes[0].value.messages[0].timestamp",
            "expected a Unix timestamp",
        ),
        (
            b'{"entry": [{"changes": [{"value": {"statuses": [{"id": "x", "status": "sent",'
            b' "timestamp": "99999999999999"}]}}]}]}',
            "entry[0].changes[0].value.statuses[0].timestamp",
            "timestamp out of range",
        ),
        (b'{"entry": [7]}', "entry[0]", "expected an object"),
        (
            b'{"entry": [{"changes": [{"field": []}]}]}',
            "entry[0].changes[0].field",
            "expected a string",
        ),
    ],
)
def test_a_bad_part_is_one_unreadable_event(body: bytes, where: str, error: str) -> None:
    [event] = adapter.parse(meta_request(body, None))
    assert event == Unreadable("whatsapp", None, where, error)


def test_a_bad_message_costs_only_itself() -> None:
    body = json.loads(payload("whatsapp", "batch.json"))
    messages = body["entry"][0]["changes"][0]["value"]["messages"]
    messages[1]["timestamp"] = {"when": "now"}
    events = adapter.parse(meta_request(json.dumps(body).encode(), None))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "InboundMessage",
        "Unreadable",
        "InboundMessage",
        "StatusUpdate",
        "InboundMessage",
    ]
    assert isinstance(events[1], Unreadable)
    assert events[1].where == "entry[0].changes[0].value.messages[1].timestamp"
    assert events[1].channel_key == PNID


# -- verification and handshake --------------------------------------------------


def test_verify_with_current_and_previous_secret() -> None:
    body = payload("whatsapp", "text.json")
    settings = whatsapp_settings(app_secret="new", previous_app_secrets=["old"])
    adapter.verify(meta_request(body, "new"), settings)
    adapter.verify(meta_request(body, "old"), settings)
    with pytest.raises(SignatureError):
        adapter.verify(meta_request(body, "other"), settings)
    with pytest.raises(SignatureError):
        adapter.verify(meta_request(body, None), settings)


def test_verify_refuses_settings_of_another_kind() -> None:
    with pytest.raises(TypeError):
        adapter.verify(meta_request(b"{}", "x"), instagram_settings())


def handshake(query: str) -> WebhookRequest:
    return WebhookRequest(method="GET", url=f"https://inbox.example.com/webhooks/whatsapp?{query}")


def test_challenge() -> None:
    channels = [whatsapp_settings(verify_token="a"), whatsapp_settings(verify_token="b")]
    ok = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=b"
    assert adapter.challenge(handshake(ok), channels) == "1158201444"
    assert adapter.challenge(handshake(ok.replace("token=b", "token=c")), channels) is None
    assert adapter.challenge(handshake(ok.replace("subscribe", "unsubscribe")), channels) is None
    assert adapter.challenge(handshake("hub.mode=subscribe&hub.verify_token=b"), channels) is None
    assert adapter.challenge(handshake(ok), []) is None


# -- sending -------------------------------------------------------------------------


async def test_send_text(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    result = await adapter.send(
        client,
        platform.base_url + "/v21.0",
        whatsapp_settings(),
        OutboundMessage(to="16505551234", text="Yes, it comes in blue."),
    )
    [request] = platform.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{PNID}/messages"
    assert request.headers["authorization"] == "Bearer wa-access-token"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "text",
        "text": {"body": "Yes, it comes in blue."},
    }
    assert result.external_id == request.reply_json()["messages"][0]["id"]


async def test_send_to_e164_drops_plus(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    await adapter.send(
        client, platform.base_url, whatsapp_settings(), OutboundMessage(to="+16505551234", text="x")
    )
    assert platform.requests[0].json()["to"] == "16505551234"


async def test_send_one_attachment(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    await adapter.send(
        client,
        platform.base_url,
        whatsapp_settings(),
        OutboundMessage(
            to="16505551234",
            text="Your invoice",
            attachments=[
                {
                    "url": "https://files.example.com/i.pdf",
                    "mime_type": "application/pdf",
                    "filename": "i.pdf",
                }
            ],
        ),
    )
    assert platform.requests[0].json() == {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "document",
        "document": {
            "link": "https://files.example.com/i.pdf",
            "caption": "Your invoice",
            "filename": "i.pdf",
        },
    }


@pytest.mark.parametrize(
    "message",
    [
        OutboundMessage(to="1", text=""),
        OutboundMessage(to="1", text="", attachments=[{"url": "https://a"}, {"url": "https://b"}]),
        OutboundMessage(to="1", text="hi", attachments=[{"type": "audio", "url": "https://a"}]),
        OutboundMessage(to="1", text="", attachments=[{"type": "image"}]),
    ],
)
async def test_send_refuses_what_whatsapp_cannot_carry(
    platform: FakePlatform, client: httpx.AsyncClient, message: OutboundMessage
) -> None:
    with pytest.raises(SendError) as info:
        await adapter.send(client, platform.base_url, whatsapp_settings(), message)
    assert info.value.code == "unsupported"
    assert not info.value.retryable
    assert platform.requests == []


async def test_outside_24_hour_window_is_permanent(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.enqueue(whatsapp_outside_window())
    with pytest.raises(SendError) as info:
        await adapter.send(
            client,
            platform.base_url,
            whatsapp_settings(),
            OutboundMessage(to="16505551234", text="late"),
        )
    error = info.value
    assert not error.retryable
    assert error.code == "131047"
    assert "Re-engagement message" in error.message
    assert "more than 24 hours" in error.message
    assert error.status_code == 400


async def test_rate_limit_honours_retry_after(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.enqueue(rate_limited(retry_after=7))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, whatsapp_settings(), OutboundMessage(to="1", text="x")
        )
    assert info.value.retryable
    assert info.value.retry_after == 7.0


async def test_throughput_error_with_400_is_retryable(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.enqueue(graph_error(130429, "Rate limit hit"))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, whatsapp_settings(), OutboundMessage(to="1", text="x")
        )
    assert info.value.retryable
    assert info.value.code == "130429"


async def test_server_error_is_retryable_then_success(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.enqueue(server_error(503))
    message = OutboundMessage(to="1", text="x")
    with pytest.raises(SendError) as info:
        await adapter.send(client, platform.base_url, whatsapp_settings(), message)
    assert info.value.retryable
    result = await adapter.send(client, platform.base_url, whatsapp_settings(), message)
    assert result.external_id.startswith("wamid.FAKE")
    assert len(platform.requests) == 2


async def test_slow_answer_is_a_retryable_timeout(platform: FakePlatform) -> None:
    platform.enqueue(slow(1.0))
    async with httpx.AsyncClient(timeout=0.2) as quick:
        with pytest.raises(SendError) as info:
            await adapter.send(
                quick, platform.base_url, whatsapp_settings(), OutboundMessage(to="1", text="x")
            )
    assert info.value.retryable
    assert info.value.code == "timeout"
    assert len(platform.requests) == 1


async def test_invalid_token_is_permanent(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.enqueue(graph_error(190, "Invalid OAuth access token.", status=401))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, whatsapp_settings(), OutboundMessage(to="1", text="x")
        )
    assert not info.value.retryable
    assert info.value.code == "190"


def test_signature_header_is_what_meta_sends() -> None:
    body = payload("whatsapp", "text.json")
    request = meta_request(body, WHATSAPP_SECRET)
    assert request.headers["x-hub-signature-256"] == meta_signature(WHATSAPP_SECRET, body)


def test_identity_is_wa_id_even_when_it_differs_from_the_number() -> None:
    # Meta: "a WhatsApp user's ID and phone number may not always match".
    body = json.loads(payload("whatsapp", "text.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = "5215512345678"
    value["messages"][0]["from"] = "525512345678"
    [message] = adapter.parse(meta_request(json.dumps(body).encode(), None))
    assert isinstance(message, InboundMessage)
    assert message.sender_id == "5215512345678"
    assert message.sender_name == "Sheena Nelson"
    assert message.sender_phone == "+525512345678"


def test_odd_type_names_become_unknown() -> None:
    body = json.loads(payload("whatsapp", "text.json"))
    body["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = "Weird Type" * 10
    [message] = adapter.parse(meta_request(json.dumps(body).encode(), None))
    assert isinstance(message, InboundMessage)
    assert message.content_type == "unknown"
