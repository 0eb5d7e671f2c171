"""A reply is a conversation's first response once the platform has accepted it: one that
fails, and a private note, never count — neither on the conversation nor in the live
figures."""

from __future__ import annotations

from typing import Any

from sqlmodel import col

from inbox.models import Conversation, Message
from tests.connectors.fake_platform import FakePlatform, graph_error
from tests.inbox.conftest import Service, Tenant
from tests.inbox.platforms import (
    events_of,
    post_meta,
    rows,
    wait_for,
    whatsapp_body,
    whatsapp_channel,
)


def written_in(service: Service, tenant: Tenant) -> int:
    """A contact wrote to a new WhatsApp channel of the tenant: the conversation id."""
    channel = whatsapp_channel(tenant)
    r = post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    assert r.status_code == 200, r.text
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert conv.id is not None
    return conv.id


def reply(tenant: Tenant, conversation_id: int, **body: Any) -> int:
    r = tenant.api.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "On it!", **body}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def settled(service: Service, message_id: int) -> Message:
    def done() -> Message | None:
        [message] = rows(service, Message, col(Message.id) == message_id)
        return message if message.status in ("sent", "failed") else None

    return wait_for(done, timeout=20, what=f"message {message_id} to be sent or failed")


def first_response(tenant: Tenant, conversation_id: int) -> float | None:
    r = tenant.api.get(f"/api/conversations/{conversation_id}")
    assert r.status_code == 200, r.text
    value = r.json()["first_response_seconds"]
    return None if value is None else float(value)


def live_average(tenant: Tenant, figure: str = "avg_first_response_seconds_today") -> float | None:
    r = tenant.api.get("/api/analytics/live")
    assert r.status_code == 200, r.text
    value = r.json()[figure]
    return None if value is None else float(value)


def test_a_failed_reply_and_a_note_never_count_and_the_first_sent_reply_does(
    service: Service, tenant: Tenant, platform: FakePlatform
) -> None:
    platform.reset()
    conv = written_in(service, tenant)

    reply(tenant, conv, content="Internal: customer is a VIP", private=True)
    platform.enqueue(graph_error(100, "(#100) Invalid parameter"))  # 400: not retried
    failed = settled(service, reply(tenant, conv))

    assert (failed.status, failed.error_code, failed.attempts) == ("failed", "100", 1)
    assert first_response(tenant, conv) is None
    assert live_average(tenant) is None
    assert live_average(tenant, "median_first_response_seconds_today") is None
    [stored] = rows(service, Conversation, col(Conversation.id) == conv)
    assert stored.first_response_at is None and stored.first_response_seconds is None

    sent = settled(service, reply(tenant, conv, content="Sorry, here it is."))

    assert sent.status == "sent"
    seconds = first_response(tenant, conv)
    assert seconds is not None and seconds >= 0
    [stored] = rows(service, Conversation, col(Conversation.id) == conv)
    assert stored.first_response_at is not None
    assert sent.updated_at is not None and stored.first_response_at == sent.updated_at
    assert live_average(tenant) == round(seconds, 1)
    assert live_average(tenant, "median_first_response_seconds_today") == round(seconds, 1)
    # Clients learn it as they learn every change of a conversation.
    updates = [
        e.data
        for e in events_of(service, tenant.org_id, "conversation.updated")
        if e.data["id"] == conv
    ]
    assert updates[-1]["first_response_seconds"] == seconds
    assert [u["first_response_seconds"] for u in updates].count(seconds) == 1

    # Only the first one counts.
    assert settled(service, reply(tenant, conv, content="Anything else?")).status == "sent"
    assert first_response(tenant, conv) == seconds


def test_a_note_alone_leaves_the_conversation_without_a_first_response(
    service: Service, tenant: Tenant
) -> None:
    conv = written_in(service, tenant)
    reply(tenant, conv, content="Will call them tomorrow", private=True)
    assert first_response(tenant, conv) is None
    assert live_average(tenant) is None

