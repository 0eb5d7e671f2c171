from __future__ import annotations

import pytest

from connectors import types
from connectors.errors import PayloadError, SendError, SignatureError
from connectors.types import Headers, InboundMessage, WebhookRequest


def test_headers_are_case_insensitive_and_keep_the_first_value() -> None:
    headers = Headers([("X-Hub-Signature-256", "a"), ("x-hub-signature-256", "b")])
    assert headers["X-HUB-SIGNATURE-256"] == "a"
    assert "x-Hub-Signature-256" in headers
    assert 1 not in headers
    assert list(headers) == ["x-hub-signature-256"]
    assert len(headers) == 1
    assert headers.get("missing") is None


def test_request_builds_headers_and_query_from_the_url() -> None:
    request = WebhookRequest(
        method="GET",
        url="https://x.test/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=12&empty=",
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert isinstance(request.headers, Headers)
    assert request.query == {"hub.mode": "subscribe", "hub.challenge": "12", "empty": ""}
    assert request.content_type == "application/json"
    assert request.body == b""


def test_explicit_query_wins() -> None:
    request = WebhookRequest(method="GET", url="https://x.test/?a=1", query={"b": "2"})
    assert request.query == {"b": "2"}


def test_events_are_frozen() -> None:
    message = InboundMessage(
        platform="sms",
        channel_key="+1",
        sender_id="+2",
        external_id="SM1",
        timestamp=__import__("datetime").datetime.now(),
        content="x",
    )
    with pytest.raises(AttributeError):
        message.content = "y"  # type: ignore[misc]


def test_errors_are_exported_where_the_types_are() -> None:
    assert types.PayloadError is PayloadError
    assert types.SignatureError is SignatureError
    error = SendError("slow down", retryable=True, code="4", retry_after=2.0, status_code=429)
    assert (error.retryable, error.code, error.retry_after, error.status_code) == (
        True,
        "4",
        2.0,
        429,
    )
    assert "slow down" in str(error)
    assert "retryable=True" in repr(error)
    assert PayloadError("bad", "entry[0]").where == "entry[0]"
