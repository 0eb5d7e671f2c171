"""Replies on the generic channel: POSTed, signed, to the channel's callback_url."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors import standard_webhooks
from tests.inbox.receiver import Answer, Receiver, eventually


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def generic_conversation(service: Any, tenant: Any, settings: dict[str, Any]) -> tuple[int, int]:
    """A generic channel with ``settings`` and a customer's conversation on it."""
    made = tenant.api.post(
        "/api/channels", json={"kind": "generic", "name": "CRM", "settings": settings}
    )
    assert made.status_code == 201, made.text
    key = tenant.api_key(scopes=("ingest",))
    sent = service.client().post(
        "/webhooks/messages/incoming",
        json={"from": "+15550123456", "content": "Any news?", "platform": "crm"},
        headers={"X-Api-Key": key},
    )
    assert sent.status_code == 200, sent.text
    [conv] = tenant.api.get("/api/conversations").json()["data"]
    return made.json()["id"], conv["id"]


def test_a_reply_is_posted_signed_retried_and_then_sent(
    service: Any, tenant: Any, receiver: Receiver
) -> None:
    secret = standard_webhooks.new_secret()
    channel_id, conv_id = generic_conversation(
        service, tenant, {"callback_url": receiver.url, "callback_secret": secret}
    )
    shown = tenant.api.get(f"/api/channels/{channel_id}").json()
    assert secret not in str(shown)
    receiver.answer(Answer(500))

    r = tenant.api.post(f"/api/conversations/{conv_id}/messages", json={"content": "Tomorrow."})
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]
    first, second = receiver.received(2)

    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.verifies_with(secret) and second.verifies_with(secret)
    body = second.json()
    assert body["type"] == "message.reply" and body["content"] == "Tomorrow."
    assert (body["message_id"], body["conversation_id"]) == (message_id, conv_id)
    messages = eventually(
        lambda: [
            m
            for m in tenant.api.get(f"/api/conversations/{conv_id}/messages").json()["data"]
            if m["id"] == message_id and m["status"] == "sent"
        ]
    )
    assert messages


def test_a_generic_channel_without_a_callback_refuses_replies_before_queuing(
    service: Any, tenant: Any
) -> None:
    _channel_id, conv_id = generic_conversation(service, tenant, {})
    before = tenant.api.get(f"/api/conversations/{conv_id}/messages").json()["data"]

    r = tenant.api.post(f"/api/conversations/{conv_id}/messages", json={"content": "Hello?"})

    assert r.status_code == 422
    assert r.json()["error"]["code"] == "CHANNEL_CANNOT_REPLY"
    assert "callback_url" in r.json()["error"]["message"]
    assert tenant.api.get(f"/api/conversations/{conv_id}/messages").json()["data"] == before
    note = tenant.api.post(
        f"/api/conversations/{conv_id}/messages", json={"content": "Call them", "private": True}
    )
    assert note.status_code == 201


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"callback_url": "https://crm.example.com/replies"}, "settings"),
        (
            {"callback_url": "gopher://x", "callback_secret": "whsec_" + "A" * 44},
            "settings.callback_url",
        ),
        (
            {"callback_url": "https://crm.example.com/r", "callback_secret": "nope"},
            "settings.callback_secret",
        ),
        (
            {
                "callback_url": "http://169.254.169.254/",
                "callback_secret": standard_webhooks.new_secret(),
            },
            "settings.callback_url",
        ),
    ],
)
def test_bad_callbacks_are_refused(tenant: Any, settings: dict[str, Any], field: str) -> None:
    r = tenant.api.post(
        "/api/channels", json={"kind": "generic", "name": "CRM", "settings": settings}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["fields"][0]["field"] == field
