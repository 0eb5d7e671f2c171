"""`InboxClient`'s REST calls against a real `inbox serve`: typed answers, typed errors,
and replies that reach the customer once however often they are retried."""

from __future__ import annotations

import itertools

import httpx
import pytest
from inbox_client import InboxClient, InboxError

from tests.clients.helpers import until

_phones = itertools.count(1)


def customer_writes(server, text: str) -> int:
    """A customer's WhatsApp message through the real webhook; the conversation's id."""
    server.send_whatsapp_text(f"+1555010{next(_phones):04d}", text)
    with server.api(server.admin) as admin:
        conversations = admin.get("/api/conversations", params={"q": text}).json()["data"]
    assert len(conversations) == 1, conversations
    return int(conversations[0]["id"])


def sends_of(server, text: str) -> list:
    return [r for r in server.sends() if r.json().get("text", {}).get("body") == text]


async def test_conversations_are_listed_filtered_and_updated(inbox_server):
    conversation_id = customer_writes(inbox_server, "Is the blue one in stock?")
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        page = await inbox.list_conversations(status="open", limit=1)
        assert page["pagination"]["limit"] == 1 and len(page["data"]) == 1
        listed = [c["id"] async for c in inbox.iter_conversations(status="open", limit=1)]
        assert conversation_id in listed and len(listed) == len(set(listed))

        assignee = inbox_server.agent.id
        closed = await inbox.update_conversation(
            conversation_id, status="closed", assignee_id=assignee
        )
        assert (closed["status"], closed["assignee_id"]) == ("closed", assignee)
        unassigned = await inbox.update_conversation(conversation_id, assignee_id=None)
        assert (unassigned["status"], unassigned["assignee_id"]) == ("closed", None)
        assert (await inbox.get_conversation(conversation_id))["status"] == "closed"

        messages = await inbox.list_messages(conversation_id)
        assert [m["content"] for m in messages["data"]] == ["Is the blue one in stock?"]


async def test_contacts_and_leads_round_trip(inbox_server):
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        contact = await inbox.create_contact({"name": "Rita Round", "email": "rita@trip.example"})
        changed = await inbox.update_contact(contact["id"], {"company": "Trip Ltd"})
        assert (changed["name"], changed["company"]) == ("Rita Round", "Trip Ltd")
        found = await inbox.list_contacts(search="Rita Round")
        assert [c["id"] for c in found["data"]] == [contact["id"]]

        lead = await inbox.create_lead({"name": "Rita's lead", "contact_id": contact["id"]})
        assert (await inbox.get_contact(contact["id"]))["leads"][0]["id"] == lead["id"]
        assert (await inbox.update_lead(lead["id"], {"status": "qualified"}))["status"] == (
            "qualified"
        )
        assert (await inbox.convert_lead(lead["id"]))["status"] == "converted"
        converted = await inbox.list_leads(status="converted", contact_id=contact["id"])
        assert [item["id"] for item in converted["data"]] == [lead["id"]]

        await inbox.delete_lead(lead["id"])
        await inbox.delete_contact(contact["id"])
        with pytest.raises(InboxError) as gone:
            await inbox.get_contact(contact["id"])
        assert (gone.value.status, gone.value.code) == (404, "RESOURCE_NOT_FOUND")


async def test_webhook_endpoints_are_managed(inbox_server):
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        created = await inbox.create_webhook(
            {"url": "http://127.0.0.1:9/hooks/inbox", "events": ["lead.created"],
             "description": "CRM", "active": False}
        )
        assert created["secret"].startswith("whsec_")
        rotated = await inbox.rotate_webhook_secret(created["id"])
        assert rotated["secret"] != created["secret"]
        updated = await inbox.update_webhook(created["id"], {"events": ["*"]})
        assert updated["events"] == ["*"] and "secret" not in updated
        assert created["id"] in [w["id"] for w in (await inbox.list_webhooks())["data"]]
        assert (await inbox.list_webhook_deliveries(created["id"]))["data"] == []
        await inbox.delete_webhook(created["id"])
        with pytest.raises(InboxError) as gone:
            await inbox.get_webhook(created["id"])
        assert gone.value.status == 404


async def test_refusals_raise_one_error_type_with_the_envelope_code(inbox_server):
    conversation_id = customer_writes(inbox_server, "Refusals, please")
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        with pytest.raises(InboxError) as missing:
            await inbox.get_conversation(2_000_000)
        assert (missing.value.status, missing.value.code) == (404, "RESOURCE_NOT_FOUND")

        with pytest.raises(InboxError) as invalid:
            await inbox.update_conversation(conversation_id, status="archived?")  # type: ignore[arg-type]
        assert (invalid.value.status, invalid.value.code) == (422, "VALIDATION_ERROR")
        assert invalid.value.message

    async with InboxClient(inbox_server.url, api_key="not-a-key") as stranger:
        with pytest.raises(InboxError) as refused:
            await stranger.list_leads()
        assert (refused.value.status, refused.value.code) == (401, "AUTHENTICATION_FAILED")
        with pytest.raises(InboxError) as no_stream:
            async for _ in stranger.events():
                pass
        assert (no_stream.value.status, no_stream.value.code) == (401, "AUTHENTICATION_FAILED")


async def test_a_reply_sent_twice_with_one_key_reaches_the_customer_once(inbox_server):
    conversation_id = customer_writes(inbox_server, "Can I change my order?")
    async with InboxClient(inbox_server.url, api_key=inbox_server.api_key) as inbox:
        first = await inbox.reply(conversation_id, "Yes, until it ships.", idempotency_key="k-1")
        again = await inbox.reply(conversation_id, "Yes, until it ships.", idempotency_key="k-1")
        assert again["id"] == first["id"]
        await until(lambda: len(sends_of(inbox_server, "Yes, until it ships.")) >= 1)
        outbound = [
            m for m in (await inbox.list_messages(conversation_id))["data"]
            if m["direction"] == "outbound"
        ]
        assert [m["id"] for m in outbound] == [first["id"]]
        assert len(sends_of(inbox_server, "Yes, until it ships.")) == 1


class LosesFirstAnswer(httpx.AsyncBaseTransport):
    """The network as it sometimes is: the request arrives, its answer is lost."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and self.lost == 0:
            self.lost += 1
            await response.aclose()
            raise httpx.ReadError("connection reset", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_reply_whose_answer_was_lost_is_retried_and_sent_once(inbox_server):
    conversation_id = customer_writes(inbox_server, "Where is my parcel?")
    network = LosesFirstAnswer()
    async with InboxClient(
        inbox_server.url, api_key=inbox_server.api_key, transport=network
    ) as inbox:
        reply = await inbox.reply(conversation_id, "It left the depot today.")
    assert network.lost == 1
    await until(lambda: len(sends_of(inbox_server, "It left the depot today.")) >= 1)
    with inbox_server.api(inbox_server.admin) as admin:
        messages = admin.get(f"/api/conversations/{conversation_id}/messages").json()["data"]
    assert [m["id"] for m in messages if m["direction"] == "outbound"] == [reply["id"]]
    assert len(sends_of(inbox_server, "It left the depot today.")) == 1
