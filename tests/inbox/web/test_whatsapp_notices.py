"""WhatsApp notices that are not messages, posted twice to a real server: a customer's
call or opened chat shows in the conversation as an activity entry (no unread, no
empty bubble), told over the WebSocket like any entry of the log."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.whatsapp import WhatsAppAdapter
from inbox.services.ingest import writes_under
from tests.connectors.helpers import meta_request, payload
from tests.inbox.live.wsclient import drain, frames_until, open_ws, ready, rest, stored
from tests.inbox.platforms import meta_headers, whatsapp_body, whatsapp_channel, whatsapp_text

CALLS = {
    "calls.json": "Incoming call",
    "calls_missed.json": "Missed call",
    "calls_connected.json": "Incoming call, 3 min 12 s",
    "request_welcome.json": "Customer opened the chat",
}


async def post(api: Any, body: bytes, secret: str) -> dict[str, Any]:
    r = await api.post("/webhooks/whatsapp", content=body, headers=meta_headers(body, secret))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def conversations_of(api: Any, channel_id: int) -> list[dict[str, Any]]:
    r = await api.get("/api/conversations", params={"channel_id": channel_id})
    assert r.status_code == 200, r.text
    return [c for c in r.json()["data"] if c["channel_id"] == channel_id]


async def messages_of(api: Any, conversation_id: int) -> list[dict[str, Any]]:
    r = await api.get(f"/api/conversations/{conversation_id}/messages")
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


@pytest.mark.parametrize("name", list(CALLS))
async def test_a_call_or_an_opened_chat_is_an_activity_entry_stored_once(service, tenant, name):
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    body = whatsapp_body(channel, name)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        first = await post(api, body, channel.secret)
        frames = stored(await frames_until(ws, lambda f: f["type"] == "conversation.updated"))
        again = await post(api, body, channel.secret)

        assert (first["stored"], again["stored"], again["duplicates"]) == (1, 0, 1)
        [conversation] = await conversations_of(api, channel.id)
        [entry] = await messages_of(api, conversation["id"])
        assert (entry["content_type"], entry["content"]) == ("activity", CALLS[name])
        assert entry["direction"] == "inbound"
        # Nothing to answer: the entry is not counted unread, yet it is the latest news.
        assert conversation["unread_count"] == 0
        assert conversation["status"] == "open"
        assert conversation["last_message"]["preview"] == CALLS[name]
        [received] = [f for f in frames if f["type"] == "message.received"]
        assert received["data"] == entry
        # The retry told nobody anything.
        assert stored(await drain(ws)) == []


async def test_a_missed_call_adds_no_unread_to_the_conversation_it_joins(service, tenant):
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        await post(api, whatsapp_text(channel, "wamid.first", "Hello"), channel.secret)
        await post(api, whatsapp_body(channel, "calls_missed.json"), channel.secret)
        [conversation] = await conversations_of(api, channel.id)
        text, missed = await messages_of(api, conversation["id"])
        assert (text["content"], missed["content"]) == ("Hello", "Missed call")
        assert conversation["unread_count"] == 1
        assert conversation["last_message"]["preview"] == "Missed call"


async def test_a_missed_call_after_the_conversation_closed_opens_a_new_one(service, tenant):
    # The customer tried to reach us: like a message, it must land in the open queue.
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        await post(api, whatsapp_text(channel, "wamid.before", "Thanks, bye"), channel.secret)
        [closed] = await conversations_of(api, channel.id)
        r = await api.patch(f"/api/conversations/{closed['id']}", json={"status": "closed"})
        assert r.status_code == 200, r.text

        await post(api, whatsapp_body(channel, "calls_missed.json"), channel.secret)

        conversations = await conversations_of(api, channel.id)
        [new] = [c for c in conversations if c["id"] != closed["id"]]
        assert (new["status"], new["unread_count"]) == ("open", 0)
        assert [m["content"] for m in await messages_of(api, new["id"])] == ["Missed call"]
        assert [c["status"] for c in conversations if c["id"] == closed["id"]] == ["closed"]


def test_activities_name_no_keys_so_they_never_run_beside_another_batch():
    for name in ("calls_missed.json", "request_welcome.json"):
        events = WhatsAppAdapter().parse(meta_request(payload("whatsapp", name), None))
        assert writes_under(1, events) is None
