from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from connectors.errors import PayloadError, SendError
from connectors.generic import GenericAdapter
from connectors.settings import GenericSettings
from connectors.types import InboundMessage, OutboundMessage, WebhookRequest
from tests.connectors.helpers import payload

adapter = GenericAdapter()


def request(body: bytes) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://inbox.example.com/webhooks/messages/incoming",
        headers={"Content-Type": "application/json", "Authorization": "Bearer key"},
        body=body,
    )


def test_full_message() -> None:
    [message] = adapter.parse(request(payload("generic", "message.json")))
    assert message == InboundMessage(
        platform="whatsapp",
        channel_key=None,
        sender_id="+15550123456",
        external_id="crm-7781",
        timestamp=datetime(2026, 1, 15, 16, 35, tzinfo=UTC),
        content="I'd like a quote for 20 units.",
        content_type="text",
        sender_name="Dana Scully",
        sender_phone="+15550123456",
    )


def test_minimal_message() -> None:
    before = datetime.now(UTC)
    [message] = adapter.parse(request(payload("generic", "message_minimal.json")))
    assert isinstance(message, InboundMessage)
    assert message.platform == "sms"
    assert message.external_id is None
    assert message.sender_name is None
    assert before <= message.timestamp <= datetime.now(UTC)


def test_instagram_ids_are_not_phones() -> None:
    body = json.dumps({"from": "1254459154682919", "content": "hi", "platform": "Instagram"})
    [message] = adapter.parse(request(body.encode()))
    assert isinstance(message, InboundMessage)
    assert message.platform == "instagram"
    assert message.sender_phone is None


def test_timestamp_with_offset_is_utc() -> None:
    body = json.dumps(
        {
            "from": "+15550123456",
            "content": "hi",
            "platform": "sms",
            "timestamp": "2026-01-15T18:35:00+02:00",
        }
    )
    [message] = adapter.parse(request(body.encode()))
    assert message.timestamp == datetime(2026, 1, 15, 16, 35, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"content": "x", "platform": "sms"}, {"from"}),
        ({"from": "+1555", "platform": "sms"}, {"content"}),
        ({"from": "+1555", "content": "", "platform": "sms"}, {"content"}),
        ({"from": "+1555", "content": "x"}, {"platform"}),
        ({"from": "+1555", "content": "x", "platform": "not a platform!"}, {"platform"}),
        ({"from": 15550123456, "content": 3, "platform": "sms"}, {"from", "content"}),
        (
            {"from": "+1555", "content": "x", "platform": "sms", "timestamp": "yesterday"},
            {"timestamp"},
        ),
        (
            {
                "from": "+1555",
                "content": "x",
                "platform": "sms",
                "timestamp": "0001-01-01T00:00:00+01:00",
            },
            {"timestamp"},
        ),
    ],
)
def test_invalid_bodies_name_every_field(body: dict[str, object], fields: set[str]) -> None:
    with pytest.raises(PayloadError) as info:
        adapter.parse(request(json.dumps(body).encode()))
    assert set(info.value.details) == fields
    for field in fields:
        assert field in info.value.message


@pytest.mark.parametrize("body", [b"", b"[1]", b'"x"', b"\xff"])
def test_not_an_object(body: bytes) -> None:
    with pytest.raises(PayloadError):
        adapter.parse(request(body))


def test_no_signature_no_handshake_no_routing() -> None:
    req = request(payload("generic", "message.json"))
    adapter.verify(req, GenericSettings())
    assert adapter.challenge(req, [GenericSettings()]) is None
    assert adapter.routing_keys(req) == []


async def test_nothing_to_send_to() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(SendError) as info:
            await adapter.send(
                client, "http://127.0.0.1:9", GenericSettings(), OutboundMessage(to="x", text="y")
            )
    assert info.value.code == "unsupported"
    assert not info.value.retryable
