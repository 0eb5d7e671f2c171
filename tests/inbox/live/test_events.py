"""What a connection is told: every REST write and webhook as the REST resource, ids one
apart, narrowed on request; typing among colleagues; nothing of another organization."""

from __future__ import annotations

import asyncio
from typing import Any

from inbox.live.asyncapi import frame_schemas
from tests.inbox.live.wsclient import (
    answer,
    consecutive,
    drain,
    events_until,
    frames_until,
    ids_of,
    of_type,
    open_ws,
    ready,
    rest,
    send,
    stored,
)
from tests.inbox.platforms import meta_headers, whatsapp_channel, whatsapp_status, whatsapp_text

STORED_TYPES = {
    "lead.created", "lead.updated", "lead.deleted", "contact.created", "contact.updated",
    "contact.deleted", "conversation.created", "conversation.updated", "message.received",
    "message.sent", "message.deleted", "message.status", "channel.updated",
}


async def _webhook(api: Any, body: bytes, secret: str) -> None:
    r = await api.post("/webhooks/whatsapp", content=body, headers=meta_headers(body, secret))
    assert r.status_code == 200, r.text


def _summary(contact: Any) -> dict[str, Any]:
    """A contact as lists (and events) show it: the detail view adds its relations."""
    detail = dict(contact.json())
    assert {"conversations", "identities", "leads"} <= set(detail)
    return {k: v for k, v in detail.items() if k not in ("conversations", "identities", "leads")}


async def _wamid_sent_for(platform: Any, channel: Any) -> str:
    for _ in range(400):
        sent = [q for q in platform.requests if q.path == f"/{channel.key}/messages"]
        if sent:
            return str(sent[-1].reply_json()["messages"][0]["id"])
        await asyncio.sleep(0.025)
    raise AssertionError("the reply never reached the platform")


async def test_writes_and_webhooks_arrive_as_their_rest_resources(service, tenant, platform):
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        start = (await ready(ws))["last_event_id"]
        lead = (await api.post("/api/leads", json={"name": "Ada", "source": "website"})).json()
        contact = (await api.post("/api/contacts", json={"name": "Bo", "email": "bo@x.example"}))
        contact = contact.json()
        await _webhook(api, whatsapp_text(channel, "wamid.in-1", "Hello there",
                                          wa_id="16505550001", name="Cy"), channel.secret)
        frames = await frames_until(ws, lambda f: f["type"] == "conversation.updated")
        events = stored(frames)
        assert [e["type"] for e in events] == [
            "lead.created", "contact.created",
            "lead.created", "contact.created", "conversation.created", "message.received",
            "conversation.updated",
        ]
        assert events[0]["data"] == lead == (await api.get(f"/api/leads/{lead['id']}")).json()
        assert events[1]["data"] == contact
        assert contact == _summary(await api.get(f"/api/contacts/{contact['id']}"))
        new_lead, new_contact, opened, received, updated = (e["data"] for e in events[2:])
        assert new_lead == (await api.get(f"/api/leads/{new_lead['id']}")).json()
        assert new_contact == _summary(await api.get(f"/api/contacts/{new_contact['id']}"))
        conv_id = opened["id"]
        assert opened["unread_count"] == 0 and opened["contact_id"] == new_contact["id"]
        conversation = (await api.get(f"/api/conversations/{conv_id}")).json()
        assert updated == conversation
        assert conversation["unread_count"] == 1
        messages = (await api.get(f"/api/conversations/{conv_id}/messages")).json()["data"]
        assert received == messages[0]
        assert received["content"] == "Hello there"

        # An agent answers: stored as queued, sent by the worker, delivered per the platform.
        platform.reset()
        r = await api.post(f"/api/conversations/{conv_id}/messages", json={"content": "Hi!"})
        assert r.status_code == 201, r.text
        reply = r.json()
        wamid = await _wamid_sent_for(platform, channel)
        # The platform's status webhooks follow its answer to the send, which the worker
        # records (message.status "sent"); only then can a status name our message.
        frames = await frames_until(
            ws, lambda f: f["type"] == "message.status" and f["data"]["status"] == "sent")
        await _webhook(api, whatsapp_status(channel, wamid, "delivered",
                                            recipient="16505550001"), channel.secret)
        frames += await frames_until(
            ws, lambda f: f["type"] == "message.status" and f["data"]["status"] == "delivered")
        more = stored(frames)
        assert [e["type"] for e in more] == [
            "message.sent", "conversation.updated", "message.status", "conversation.updated",
            "message.status"]
        assert more[0]["data"] == reply
        shown = (await api.get(f"/api/conversations/{conv_id}/messages")).json()["data"]
        assert shown[-1]["id"] == reply["id"]
        # Sent is when the reply became the conversation's first response.
        assert more[1]["data"]["first_response_seconds"] is None
        assert more[3]["data"] == (await api.get(f"/api/conversations/{conv_id}")).json()
        assert more[3]["data"]["first_response_seconds"] is not None
        statuses = [more[2], more[4]]
        assert [s["data"]["status"] for s in statuses] == ["sent", "delivered"]
        for change in statuses:
            assert change["data"]["id"] == reply["id"]
            assert change["data"]["conversation_id"] == conv_id
            assert change["data"]["external_id"] == wamid == shown[-1]["external_id"]
            assert change["data"]["error_code"] is None and change["data"]["error"] is None
        assert shown[-1]["status"] == "delivered"
        assert more[1]["data"]["last_message"]["preview"] == "Hi!"

        # A change through REST: the event is what the PATCH answered and GET shows.
        r = await api.patch(f"/api/conversations/{conv_id}", json={"status": "pending",
                                                                   "labels": ["vip"]})
        [patched] = stored(await frames_until(ws, lambda f: "id" in f))
        assert patched["type"] == "conversation.updated"
        shown_conv = (await api.get(f"/api/conversations/{conv_id}")).json()
        assert patched["data"] == r.json() == shown_conv

        everything = events + more + [patched]
        ids = ids_of(everything)
        assert ids == list(range(start + 1, start + 1 + len(ids)))
        assert {e["organization_id"] for e in everything} == {tenant.org_id}
        for frame in [*frames, *everything]:
            assert frame.get("organization_id", tenant.org_id) == tenant.org_id


async def test_ids_are_dense_under_concurrent_writers(service, tenant):
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        answers = await asyncio.gather(
            *(api.post("/api/leads", json={"name": f"Lead {n}"}) for n in range(40))
        )
        assert {a.status_code for a in answers} == {201}
        events = stored(await events_until(ws, 40))
    assert ids_of(events) == list(range(1, 41))
    assert sorted(e["data"]["id"] for e in events) == sorted(a.json()["id"] for a in answers)


async def test_the_events_parameter_narrows_the_stream(service, tenant):
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token, "events=lead.created,contact.deleted") as ws:
        await ready(ws)
        tenant.api.post("/api/contacts", json={"name": "Not wanted"})
        lead = tenant.api.post("/api/leads", json={"name": "Wanted"}).json()
        tenant.api.patch(f"/api/leads/{lead['id']}", json={"status": "contacted"})
        last = tenant.api.post("/api/leads", json={"name": "Wanted too"}).json()
        frames = await frames_until(ws, lambda f: f.get("data", {}).get("id") == last["id"])
        frames += await drain(ws)
    assert [(f["type"], f["data"]["id"]) for f in frames] == [
        ("lead.created", lead["id"]), ("lead.created", last["id"])]
    assert ids_of(frames) == [2, 4]


async def test_subscribe_and_unsubscribe_frames(service, tenant):
    first = tenant.conversation(messages=1)
    second = tenant.conversation(messages=1)
    # An API key: no presence of its own to tell, so the stream holds only what is asked.
    token = tenant.api_key()

    def note(conv: Any, text: str) -> dict[str, Any]:
        r = tenant.api.post(f"/api/conversations/{conv.id}/messages",
                            json={"content": text, "private": True})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async with await open_ws(service.url, token) as ws:
        await ready(ws)
        await send(ws, {"type": "subscribe", "events": ["message.sent"],
                        "conversation_ids": [first.id]})
        assert await answer(ws) == {"type": "subscription", "events": ["message.sent"],
                                     "conversation_ids": [first.id]}
        tenant.api.post("/api/leads", json={"name": "Filtered out"})
        note(second, "other conversation")
        wanted = note(first, "this one")
        [got] = await frames_until(ws, lambda f: "id" in f)
        assert got["data"] == wanted and got["type"] == "message.sent"
        assert await drain(ws) == []

        await ws.send('{"type": "dance"}')
        error = await answer(ws)
        assert (error["type"], error["code"]) == ("error", "UNKNOWN_TYPE")

        await send(ws, {"type": "unsubscribe", "conversation_ids": [first.id]})
        assert (await answer(ws))["conversation_ids"] is None
        second_note = note(second, "now wanted")
        [got] = await frames_until(ws, lambda f: "id" in f)
        assert got["data"] == second_note

        await ws.send('{"type": "unsubscribe"}')
        assert await answer(ws) == {"type": "subscription", "events": None,
                                     "conversation_ids": None}
        lead = tenant.api.post("/api/leads", json={"name": "Everything again"}).json()
        [got] = stored(await frames_until(ws, lambda f: f["type"] == "lead.created"))
        assert got["data"] == lead


async def test_typing_reaches_colleagues_but_not_the_sender_nor_another_org(
    service, tenant, other_tenant
):
    conv = tenant.conversation()
    agent, _ = tenant.user("agent")
    colleague, _ = tenant.user("agent")
    stranger, _ = other_tenant.user("agent")
    async with (
        await open_ws(service.url, service.token_for(agent)) as sender,
        await open_ws(service.url, service.token_for(agent)) as same_agent_elsewhere,
        await open_ws(service.url, service.token_for(colleague)) as other,
        await open_ws(service.url, tenant.api_key()) as dashboard,
        await open_ws(service.url, service.token_for(stranger)) as outsider,
    ):
        sender_id = (await ready(sender))["connection_id"]
        for ws in (same_agent_elsewhere, other, dashboard, outsider):
            await ready(ws)
        # Presence and metrics settle before typing.
        for ws in (sender, same_agent_elsewhere, other, dashboard, outsider):
            await drain(ws)
        await send(sender, {"type": "typing", "conversation_id": conv.id})
        expected = {"conversation_id": conv.id, "user_id": agent.id, "connection_id": sender_id}
        for ws in (same_agent_elsewhere, other, dashboard):
            [typing] = of_type(await frames_until(ws, lambda f: f["type"] == "typing"), "typing")
            assert typing["data"] == expected
            assert typing["organization_id"] == tenant.org_id and "id" not in typing
        assert of_type(await drain(sender), "typing") == []
        assert of_type(await drain(outsider), "typing") == []
        await sender.send('{"type": "typing", "conversation_id": 0}')
        assert (await answer(sender))["type"] == "error"


async def test_another_organization_never_sees_a_thing(service, tenant, other_tenant):
    channel = whatsapp_channel(tenant)
    agent, _ = tenant.user("agent")
    outsider_user, _ = other_tenant.user("agent")
    own = service.token_for(tenant.owner)
    theirs = service.token_for(outsider_user)
    async with (
        await open_ws(service.url, theirs) as outsider,
        await open_ws(service.url, tenant.api_key()) as insider,
        rest(service.url, own) as api,
    ):
        await ready(outsider)
        await ready(insider)
        await drain(outsider)
        # Presence, typing, REST writes and a webhook in the first organization.
        async with await open_ws(service.url, service.token_for(agent)) as typist:
            await ready(typist)
            await typist.send('{"type": "typing", "conversation_id": 1}')
            await (await api.post("/api/leads", json={"name": "Secret lead"})).aread()
            await _webhook(api, whatsapp_text(channel, "wamid.secret", "secret words"),
                           channel.secret)
            await frames_until(insider, lambda f: f["type"] == "conversation.updated")
        await frames_until(insider, lambda f: f.get("data", {}).get("status") == "offline")
        seen = await drain(outsider)
        assert stored(seen) == []
        assert {f["organization_id"] for f in seen} <= {other_tenant.org_id}
        assert [f for f in seen if f["type"] in ("typing", "agent.status")] == []

        # Nor replayed: resuming from the start gives only the organization's own events.
        async with await open_ws(service.url, theirs, "last_event_id=0") as replay:
            assert (await ready(replay))["last_event_id"] == 0
            assert stored(await drain(replay)) == []
        async with await open_ws(service.url, own, "last_event_id=0") as replay:
            await ready(replay)
            mine = stored(await drain(replay))
        assert ids_of(mine) == list(range(1, len(mine) + 1)) and len(mine) == 6
        assert {f["organization_id"] for f in mine} == {tenant.org_id}
        assert consecutive(ids_of(mine))
        assert {f["type"] for f in mine} <= STORED_TYPES


def _unknown_event_type(frame: dict[str, Any], *unknown: str) -> None:
    """An error frame that names what was wrong and lists every event type there is."""
    assert set(frame) == {"type", "code", "message"}, frame
    assert (frame["type"], frame["code"]) == ("error", "UNKNOWN_EVENT_TYPE"), frame
    for name in unknown:
        assert repr(name) in frame["message"], frame
    listed = frame["message"].rpartition("the event types are ")[2].split(", ")
    # The events the published schemas describe: frames that carry a resource as data.
    published = {type for type, schema in frame_schemas().items()
                 if "data" in schema["properties"]}
    assert STORED_TYPES | {"metrics.update", "agent.status", "typing"} <= published
    assert set(listed) == published, frame


async def test_unknown_names_in_the_events_parameter_are_reported(service, tenant):
    token = tenant.api_key()
    async with await open_ws(service.url, token, "events=bogus,lead.created") as ws:
        await ready(ws)
        _unknown_event_type(await answer(ws), "bogus")
        # The connection stays, narrowed to the type that exists.
        tenant.api.post("/api/contacts", json={"name": "Not wanted"})
        lead = tenant.api.post("/api/leads", json={"name": "Wanted"}).json()
        [got] = await frames_until(ws, lambda f: "id" in f)
        assert (got["type"], got["data"]) == ("lead.created", lead)
        assert await drain(ws) == []


async def test_unknown_event_types_in_subscribe_and_unsubscribe_are_refused(service, tenant):
    async with await open_ws(service.url, tenant.api_key()) as ws:
        await ready(ws)
        await send(ws, {"type": "subscribe", "events": ["bogus.event"]})
        _unknown_event_type(await answer(ws), "bogus.event")
        await send(ws, {"type": "unsubscribe", "events": ["lead.created", "lead.craeted"]})
        _unknown_event_type(await answer(ws), "lead.craeted")
        # Neither frame changed the subscription: everything still comes.
        lead = tenant.api.post("/api/leads", json={"name": "Still wanted"}).json()
        [got] = stored(await frames_until(ws, lambda f: "id" in f))
        assert (got["type"], got["data"]) == ("lead.created", lead)
        await send(ws, {"type": "subscribe", "events": ["lead.created"]})
        # Live figures may come first: the answer to the frame is what counts.
        answers = await frames_until(ws, lambda f: f["type"] == "subscription")
        assert answers[-1] == {"type": "subscription", "events": ["lead.created"],
                               "conversation_ids": None}


async def _refused_typing(ws: Any, conversation_id: int) -> None:
    await send(ws, {"type": "typing", "conversation_id": conversation_id})
    assert await answer(ws) == {"type": "error", "code": "RESOURCE_NOT_FOUND",
                                 "message": f"Conversation {conversation_id} not found"}


async def test_typing_in_a_conversation_the_organization_does_not_have_is_refused(
    service, tenant, other_tenant
):
    mine = tenant.conversation()
    theirs = other_tenant.conversation()
    agent, _ = tenant.user("agent")
    colleague, _ = tenant.user("agent")
    outsider, _ = other_tenant.user("agent")
    async with (
        await open_ws(service.url, service.token_for(agent)) as sender,
        await open_ws(service.url, service.token_for(colleague)) as other,
        await open_ws(service.url, service.token_for(outsider)) as stranger,
    ):
        for ws in (sender, other, stranger):
            await ready(ws)
        for ws in (sender, other, stranger):
            await drain(ws)
        # Another organization's conversation is refused exactly like one that does not exist.
        for conversation_id in (theirs.id, theirs.id + 1_000_000, 2**31, 2**53):
            await _refused_typing(sender, conversation_id)
        # Events from one sender arrive in order: the first typing a colleague gets is this.
        await send(sender, {"type": "typing", "conversation_id": mine.id})
        [typing] = of_type(await frames_until(other, lambda f: f["type"] == "typing"), "typing")
        assert typing["data"]["conversation_id"] == mine.id
        assert of_type(await drain(stranger), "typing") == []


async def test_typing_stops_once_the_conversation_is_deleted_with_its_contact(service, tenant):
    conv = tenant.conversation()
    agent, _ = tenant.user("agent")
    async with (
        await open_ws(service.url, service.token_for(agent)) as sender,
        await open_ws(service.url, tenant.api_key()) as dashboard,
    ):
        await ready(sender)
        await ready(dashboard)
        await send(sender, {"type": "typing", "conversation_id": conv.id})
        await frames_until(dashboard, lambda f: f["type"] == "typing")
        assert tenant.api.delete(f"/api/contacts/{conv.contact_id}").status_code == 204
        await frames_until(dashboard, lambda f: f["type"] == "contact.deleted")
        await drain(sender)
        await _refused_typing(sender, conv.id)
        assert of_type(await drain(dashboard), "typing") == []
