"""One conversation end to end: a customer writes on WhatsApp, an agent answers, the
platform delivers the answer and the customer reads it."""

from __future__ import annotations

from sqlmodel import col

from inbox.models import Conversation, Message
from tests.inbox.platforms import (
    events_of,
    post_meta,
    rows,
    wait_for,
    whatsapp_body,
    whatsapp_channel,
    whatsapp_status,
)


def test_a_whatsapp_conversation_from_webhook_to_read_receipt(service, tenant, platform):
    platform.reset()
    channel = whatsapp_channel(tenant)
    _, agent_api = tenant.user("agent")

    # The customer writes: a signed webhook, stored before the 200.
    r = post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    assert r.status_code == 200, r.text
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    inbox = agent_api.get("/api/conversations").json()["data"]
    assert [(c["id"], c["unread_count"]) for c in inbox] == [(conv.id, 1)]
    [received] = events_of(service, tenant.org_id, "message.received")
    assert received.data["content"] == "Does it come in another color?"

    # An agent answers; the worker sends the answer through the platform.
    answer = agent_api.post(f"/api/conversations/{conv.id}/messages",
                            json={"content": "Yes: blue and green."})
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "queued"
    message_id = answer.json()["id"]
    [request] = wait_for(
        lambda: [q for q in platform.requests if q.path == f"/{channel.key}/messages"],
        what="the answer to reach the platform")
    assert request.json()["text"] == {"body": "Yes: blue and green."}
    wamid = request.reply_json()["messages"][0]["id"]
    wait_for(lambda: rows(service, Message, col(Message.id) == message_id)[0].status == "sent",
             what="the answer to be recorded as sent")

    # The platform reports delivery, then the customer reads it.
    for status in ("delivered", "read"):
        r = post_meta(service, "whatsapp", whatsapp_status(channel, wamid, status),
                      channel.secret)
        assert r.status_code == 200, r.text

    [answered] = rows(service, Message, col(Message.id) == message_id)
    assert (answered.status, answered.external_id) == ("read", wamid)
    shown = agent_api.get(f"/api/conversations/{conv.id}/messages").json()["data"]
    assert [(m["direction"], m["status"]) for m in shown] == [
        ("inbound", "received"), ("outbound", "read")]

    # What a live client is told, in order, from the outbox.
    story = [(e.type, e.data.get("status")) for e in events_of(service, tenant.org_id)
             if e.type.startswith("message.")]
    assert story == [
        ("message.received", "received"),
        ("message.sent", "queued"),
        ("message.status", "sent"),
        ("message.status", "delivered"),
        ("message.status", "read"),
    ]
    ids = [e.id for e in events_of(service, tenant.org_id)]
    assert ids == list(range(1, len(ids) + 1))
