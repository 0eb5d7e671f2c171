from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from connectors.errors import PayloadError, SendError, SignatureError
from connectors.instagram import InstagramAdapter
from connectors.types import (
    Deletion,
    Echo,
    InboundMessage,
    OutboundMessage,
    Reaction,
    ReadReceipt,
    Unhandled,
    Unreadable,
    WebhookRequest,
)
from tests.connectors.fake_platform import FakePlatform, graph_error, rate_limited
from tests.connectors.helpers import (
    INSTAGRAM_SECRET,
    instagram_settings,
    meta_request,
    payload,
    whatsapp_settings,
)

adapter = InstagramAdapter()
IG = "17841405822304914"
USER = "1254459154682919"


def parse(name: str) -> list[object]:
    return list(adapter.parse(meta_request(payload("instagram", name), INSTAGRAM_SECRET)))


def test_text() -> None:
    [message] = parse("text.json")
    assert isinstance(message, InboundMessage)
    assert message.platform == "instagram"
    assert message.channel_key == IG
    assert message.sender_id == USER
    assert message.content == "Do you ship to Canada?"
    assert message.content_type == "text"
    assert message.timestamp == datetime(2019, 9, 23, 18, 14, 45, 349000, tzinfo=UTC)
    assert message.sender_phone is None
    assert adapter.routing_keys(meta_request(payload("instagram", "text.json"), None)) == [IG]


def test_attachments() -> None:
    [message] = parse("attachments.json")
    assert isinstance(message, InboundMessage)
    assert message.content_type == "image"
    assert [a["type"] for a in message.attachments] == ["image", "video"]
    assert all(a["url"].startswith("https://lookaside.fbsbx.com/") for a in message.attachments)


def test_echo_is_never_an_inbound_message() -> None:
    [echo] = parse("echo.json")
    assert isinstance(echo, Echo)
    assert echo.recipient_id == USER
    assert echo.channel_key == IG
    assert echo.content == "Yes, we ship to Canada."
    assert echo.external_id.endswith("QZDZD")


def test_a_message_from_the_account_itself_is_an_echo_even_without_the_flag() -> None:
    body = json.loads(payload("instagram", "text.json"))
    item = body["entry"][0]["messaging"][0]
    item["sender"], item["recipient"] = {"id": IG}, {"id": USER}
    [echo] = adapter.parse(meta_request(json.dumps(body).encode(), INSTAGRAM_SECRET))
    assert isinstance(echo, Echo)
    assert (echo.recipient_id, echo.content) == (USER, "Do you ship to Canada?")


def test_a_reaction_or_read_by_the_account_itself_is_only_acknowledged() -> None:
    body = json.loads(payload("instagram", "read.json"))
    body["entry"][0]["messaging"][0]["sender"] = {"id": IG}
    [event] = adapter.parse(meta_request(json.dumps(body).encode(), INSTAGRAM_SECRET))
    assert isinstance(event, Unhandled)
    assert event.field == "messaging.from_business.read"


def test_deleted() -> None:
    [deletion] = parse("deleted.json")
    assert isinstance(deletion, Deletion)
    assert deletion.sender_id == USER
    assert deletion.target_id.startswith("aWdfZAG1faXRlbToxOklHTWVzc2FnZA")


def test_reaction_and_unreact() -> None:
    [reaction] = parse("reaction.json")
    assert isinstance(reaction, Reaction)
    assert reaction.emoji == "\u2764\ufe0f"
    assert reaction.sender_id == USER
    [unreact] = parse("unreact.json")
    assert isinstance(unreact, Reaction)
    assert unreact.emoji is None
    assert unreact.target_id == reaction.target_id


def test_read() -> None:
    [read] = parse("read.json")
    assert isinstance(read, ReadReceipt)
    assert read.reader_id == USER
    assert len(read.message_ids) == 1
    assert read.watermark is None


def test_replies_to_story_and_message() -> None:
    story, reply = parse("reply_to.json")
    assert isinstance(story, InboundMessage)
    assert isinstance(reply, InboundMessage)
    assert story.reply_to is None
    assert story.raw["reply_to"]["story"]["id"] == "17887496957736618"
    assert (story.content_type, story.content) == (
        "story_reply",
        "Replied to your story: Love this one!",
    )
    assert story.attachments[-1]["type"] == "story"
    assert story.attachments[-1]["story_id"] == "17887496957736618"
    assert story.attachments[-1]["url"].startswith("https://")
    assert reply.reply_to is not None
    assert reply.reply_to.endswith("ZDZD")


def test_postback() -> None:
    [postback] = parse("postback.json")
    assert isinstance(postback, InboundMessage)
    assert postback.content_type == "postback"
    assert postback.content == "Track my order"
    assert postback.raw["postback"]["payload"] == "TRACK_ORDER"


def test_unsupported() -> None:
    [message] = parse("unsupported.json")
    assert isinstance(message, InboundMessage)
    assert message.content_type == "unsupported"


def test_batch() -> None:
    events = parse("batch.json")
    assert [type(e).__name__ for e in events] == [
        "InboundMessage",
        "InboundMessage",
        "ReadReceipt",
        "InboundMessage",
    ]
    assert [getattr(e, "channel_key", None) for e in events] == [IG, IG, IG, "17841400000000001"]
    assert adapter.routing_keys(meta_request(payload("instagram", "batch.json"), None)) == [
        IG,
        "17841400000000001",
    ]


def test_changes_and_other_messaging_kinds_are_acknowledged() -> None:
    body = json.loads(payload("instagram", "text.json"))
    body["entry"][0]["messaging"][0]["message"]["future"] = {"x": 1}
    body["entry"][0]["messaging"].append(
        {"sender": {"id": USER}, "recipient": {"id": IG}, "timestamp": 1, "referral": {"ref": "x"}}
    )
    body["entry"][0]["changes"] = [{"field": "comments", "value": {"id": "1"}}]
    text, referral, comment = adapter.parse(meta_request(json.dumps(body).encode(), None))
    assert isinstance(text, InboundMessage)
    assert isinstance(referral, Unhandled) and referral.field == "messaging.referral"
    assert comment == Unhandled("instagram", IG, "comments", "entry[0].changes[0]", {"id": "1"}, IG)


def test_whatsapp_object_is_acknowledged_not_read() -> None:
    [event] = adapter.parse(meta_request(payload("whatsapp", "text.json"), None))
    assert isinstance(event, Unhandled) and event.field == "object"


def test_a_body_that_is_no_json_object_raises_payload_error() -> None:
    for body in (b"{", b"[]", b"3"):
        with pytest.raises(PayloadError):
            adapter.parse(meta_request(body, None))


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            b'{"object": "instagram", "entry": [{"id": "1", "messaging": [{"message": {}}]}]}',
            "entry[0].messaging[0].message.mid",
        ),
        (
            b'{"object": "instagram", "entry": [{"id": "1", "messaging": [{"sender": {"id": "2"},'
            b' "timestamp": "x", "message": {"mid": "m"}}]}]}',
            "entry[0].messaging[0].timestamp",
        ),
        (
            b'{"object": "instagram", "entry": [{"id": "1", "messaging": [{"timestamp": 1,'
            b' "message": {"mid": "m", "text": "no sender"}}]}]}',
            "entry[0].messaging[0].sender.id",
        ),
    ],
)
def test_a_bad_item_is_one_unreadable_event(body: bytes, where: str) -> None:
    [event] = adapter.parse(meta_request(body, None))
    assert isinstance(event, Unreadable)
    assert (event.channel_key, event.where) == ("1", where)


def test_verify_and_rotation() -> None:
    body = payload("instagram", "text.json")
    settings = instagram_settings(app_secret="new", previous_app_secrets=["old", "older"])
    adapter.verify(meta_request(body, "new"), settings)
    adapter.verify(meta_request(body, "older"), settings)
    with pytest.raises(SignatureError):
        adapter.verify(meta_request(body, INSTAGRAM_SECRET), settings)
    with pytest.raises(SignatureError):
        adapter.verify(meta_request(body, None), settings)
    with pytest.raises(TypeError):
        adapter.verify(meta_request(body, "new"), whatsapp_settings())


def test_challenge() -> None:
    request = WebhookRequest(
        method="GET",
        url="https://x/webhooks/instagram"
        "?hub.mode=subscribe&hub.challenge=42&hub.verify_token=ig-verify-token",
    )
    assert adapter.challenge(request, [instagram_settings()]) == "42"
    assert adapter.challenge(request, [instagram_settings(verify_token="other")]) is None


async def test_send_text(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    result = await adapter.send(
        client,
        platform.base_url + "/v21.0",
        instagram_settings(),
        OutboundMessage(to=USER, text="Yes, we do."),
    )
    [request] = platform.requests
    assert request.path == f"/v21.0/{IG}/messages"
    assert request.headers["authorization"] == "Bearer ig-access-token"
    assert request.json() == {"recipient": {"id": USER}, "message": {"text": "Yes, we do."}}
    assert result.external_id == request.reply_json()["message_id"]


async def test_send_attachment(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    await adapter.send(
        client,
        platform.base_url,
        instagram_settings(),
        OutboundMessage(
            to=USER,
            text="",
            attachments=[{"type": "image", "url": "https://files.example.com/a.png"}],
        ),
    )
    assert platform.requests[0].json()["message"] == {
        "attachment": {"type": "image", "payload": {"url": "https://files.example.com/a.png"}}
    }


async def test_send_text_with_attachment_is_unsupported(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    with pytest.raises(SendError) as info:
        await adapter.send(
            client,
            platform.base_url,
            instagram_settings(),
            OutboundMessage(to=USER, text="x", attachments=[{"url": "https://a"}]),
        )
    assert info.value.code == "unsupported"


async def test_outside_window_is_permanent(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.enqueue(
        graph_error(10, "This message is sent outside of allowed window.", subcode=2534022)
    )
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, instagram_settings(), OutboundMessage(to=USER, text="x")
        )
    assert not info.value.retryable
    assert info.value.code == "10"


async def test_rate_limited(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    platform.enqueue(rate_limited(retry_after="3"))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, instagram_settings(), OutboundMessage(to=USER, text="x")
        )
    assert info.value.retryable
    assert info.value.retry_after == 3.0


async def test_success_without_id_is_not_retried(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    from tests.connectors.fake_platform import Reply

    platform.enqueue(Reply(body={"recipient_id": USER}))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, instagram_settings(), OutboundMessage(to=USER, text="x")
        )
    assert info.value.code == "bad_response"
    assert not info.value.retryable
