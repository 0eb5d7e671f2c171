from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from connectors import standard_webhooks
from connectors.errors import PayloadError, SendError
from connectors.generic import GenericAdapter, send_callback
from connectors.safe_urls import guarded_client
from connectors.settings import GenericSettings
from connectors.types import InboundMessage, OutboundMessage, WebhookRequest
from tests.connectors.helpers import payload
from tests.inbox.receiver import Answer, Receiver

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


# -- the callback: what is kept of its answer, and how long it may take ------------------


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def reply_to_send() -> OutboundMessage:
    return OutboundMessage(to="contact:1", text="Tomorrow.", message_id=7, conversation_id=3)


async def send_to(url: str, timeout: float = 5.0) -> str:
    async with guarded_client(allow_private=True, timeout=timeout) as client:
        result = await send_callback(client, url, standard_webhooks.new_secret(), reply_to_send())
    return result.external_id


async def test_the_id_a_callback_answers_becomes_the_replys_external_id(
    receiver: Receiver,
) -> None:
    receiver.answer(Answer(200, body=b'{"id": "crm-reply-9"}'), Answer(200, body=b"thanks"))
    assert await send_to(receiver.url) == "crm-reply-9"
    # No id: the reply keeps the webhook-id it was sent with.
    assert await send_to(receiver.url) == "msg_reply_7"


@pytest.mark.parametrize(
    "answered",
    [{"id": 123}, {"id": ""}, {"id": "x" * 256}, {"id": ["crm-1"]}, {"id": {"n": 1}}],
)
async def test_an_id_a_message_cannot_hold_is_not_kept_and_is_logged(
    receiver: Receiver, answered: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer(Answer(200, body=json.dumps(answered).encode()))
    with caplog.at_level(logging.WARNING, logger="connectors.generic"):
        assert await send_to(receiver.url) == "msg_reply_7"
    assert "not a string of 1 to 255 characters" in caplog.text


class _Dripping(BaseHTTPRequestHandler):
    """Answers 200 at once, then its body a byte at a time: each read is quick, the whole
    answer is not."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "100")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass  # the sender gave up

    def log_message(self, *args: Any) -> None:
        pass


async def test_a_callback_dripping_its_answer_fails_at_the_deadline_for_the_whole() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dripping)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(SendError) as info:
            await send_to(f"http://127.0.0.1:{server.server_address[1]}/hook", timeout=0.5)
    finally:
        server.shutdown()
        server.server_close()
    assert info.value.code == "timeout" and info.value.retryable
    assert "within 0.5 s" in info.value.message
