"""Conversations: the inbox list and its filters, triage changes, and message history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from inbox.models import Conversation, Message, utcnow
from tests.inbox.platforms import events_of


def set_activity(service: Any, conversation_id: int, at: datetime | None) -> None:
    async def update() -> None:
        async with service.db.session() as session:
            conv = await session.get(Conversation, conversation_id)
            assert conv is not None
            conv.last_message_at = at
            session.add(conv)
            await session.commit()

    service.run(update())


def message_ids(service: Any, conversation_id: int) -> list[int]:
    async def load() -> list[int]:
        async with service.db.session() as session:
            rows = await session.exec(
                select(Message.id)
                .where(Message.conversation_id == conversation_id)
                .order_by(col(Message.id))
            )
            return [int(i) for i in rows if i is not None]

    return service.run(load())


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["data"]]


def test_list_shows_newest_activity_first_with_contact_channel_and_last_message(service, tenant):
    first = tenant.conversation(messages=1, name="Ann")
    second = tenant.conversation(messages=3, name="Bob")
    quiet = tenant.conversation(messages=2, name="Cat")
    now = utcnow()
    set_activity(service, first.id, now - timedelta(minutes=1))
    set_activity(service, second.id, now - timedelta(minutes=5))
    set_activity(service, quiet.id, None)

    r = tenant.api.get("/api/conversations")
    assert ids(r) == [first.id, second.id, quiet.id]
    page = r.json()
    assert page["pagination"] == {
        "total": 3, "limit": 50, "offset": 0, "has_more": False, "next_cursor": None
    }
    listed = page["data"][1]
    assert listed["contact"] == {"id": second.contact_id, "name": "Bob"}
    assert listed["contact_id"] == second.contact_id
    assert listed["channel"]["id"] == second.channel_id
    assert listed["channel"]["kind"] == "generic"
    assert listed["unread_count"] == 3
    assert listed["status"] == "open"
    assert listed["assignee_id"] is None
    assert listed["labels"] == []
    assert listed["last_message"]["preview"] == "message 3"
    assert listed["last_message"]["at"].endswith("Z")
    assert listed["last_message"]["at"] == listed["last_message_at"]
    assert tenant.api.get(f"/api/conversations/{second.id}").json() == listed


def test_filters(service, tenant):
    agent, agent_api = tenant.user("agent")
    mine = tenant.conversation(name="Mine")
    theirs = tenant.conversation(name="Theirs")
    nobody = tenant.conversation(name="Nobody", unread=0)
    closed = tenant.conversation(name="Closed")
    tenant.api.patch(f"/api/conversations/{mine.id}",
                     json={"assignee_id": tenant.owner.id, "labels": ["billing", "vip"]})
    tenant.api.patch(f"/api/conversations/{theirs.id}",
                     json={"assignee_id": agent.id, "labels": ["billing"]})
    tenant.api.patch(f"/api/conversations/{closed.id}", json={"status": "closed"})

    def listed(**params: Any) -> set[int]:
        return set(ids(tenant.api.get("/api/conversations", params=params)))

    assert listed(status="closed") == {closed.id}
    assert listed(status="open") == {mine.id, theirs.id, nobody.id}
    assert listed(assignee_id=agent.id) == {theirs.id}
    assert listed(assignee="me") == {mine.id}
    assert set(ids(agent_api.get("/api/conversations", params={"assignee": "me"}))) == {
        theirs.id
    }
    assert listed(assignee="none") == {nobody.id, closed.id}
    assert listed(channel_id=nobody.channel_id) == {nobody.id}
    assert listed(unread="true") == {mine.id, theirs.id, closed.id}
    assert listed(label="billing") == {mine.id, theirs.id}
    assert listed(label="vip") == {mine.id}
    assert listed(label="bill") == set()
    assert listed(label="billing", assignee="me", status="open") == {mine.id}
    for bad in ({"status": "archived"}, {"assignee": "someone"}, {"assignee_id": 0},
                {"unread": "maybe"}, {"channel_id": "x"}):
        r = tenant.api.get("/api/conversations", params=bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["details"]["fields"][0]["field"] == next(iter(bad))


def test_assignee_me_needs_a_user(service, tenant):
    tenant.conversation()
    key_api = service.client(tenant.api_key())
    r = key_api.get("/api/conversations", params={"assignee": "me"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "assignee"


def test_patch_records_conversation_updated_with_the_rest_representation(service, tenant):
    agent, _ = tenant.user("agent")
    conv = tenant.conversation()
    r = tenant.api.patch(
        f"/api/conversations/{conv.id}",
        json={"status": "pending", "assignee_id": agent.id, "labels": ["vip", "vip", "refund"]},
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["status"] == "pending"
    assert updated["assignee_id"] == agent.id
    assert updated["labels"] == ["vip", "refund"]
    [event] = events_of(service, tenant.org_id, "conversation.updated")
    assert event.data == updated
    assert tenant.api.get(f"/api/conversations/{conv.id}").json() == updated


def test_patch_changes_only_the_given_fields(service, tenant):
    agent, _ = tenant.user("agent")
    conv = tenant.conversation()
    tenant.api.patch(f"/api/conversations/{conv.id}",
                     json={"assignee_id": agent.id, "labels": ["a"]})
    r = tenant.api.patch(f"/api/conversations/{conv.id}", json={"status": "closed"})
    assert r.json()["assignee_id"] == agent.id and r.json()["labels"] == ["a"]
    unassigned = tenant.api.patch(f"/api/conversations/{conv.id}", json={"assignee_id": None})
    assert unassigned.json()["assignee_id"] is None
    assert unassigned.json()["status"] == "closed"
    assert len(events_of(service, tenant.org_id, "conversation.updated")) == 3
    tenant.api.patch(f"/api/conversations/{conv.id}", json={"status": "closed"})
    assert len(events_of(service, tenant.org_id, "conversation.updated")) == 3


@pytest.mark.parametrize("who", ["other organization", "deactivated", "missing"])
def test_assignee_must_be_an_active_user_of_the_organization(service, tenant, other_tenant, who):
    if who == "other organization":
        assignee_id = other_tenant.owner.id
    elif who == "deactivated":
        user, _ = tenant.user("agent")
        tenant.api.post(f"/api/users/{user.id}/deactivate").raise_for_status()
        assignee_id = user.id
    else:
        assignee_id = 2_000_000_000
    conv = tenant.conversation()
    r = tenant.api.patch(f"/api/conversations/{conv.id}",
                         json={"assignee_id": assignee_id, "status": "closed"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert r.json()["error"]["details"]["fields"][0]["field"] == "assignee_id"
    after = tenant.api.get(f"/api/conversations/{conv.id}").json()
    assert after["assignee_id"] is None and after["status"] == "open"
    assert events_of(service, tenant.org_id, "conversation.updated") == []


def test_invalid_patches_are_rejected(tenant):
    conv = tenant.conversation()
    for body, field in [
        ({"status": "archived"}, "status"),
        ({"labels": ["a,b"]}, "labels.0"),
        ({"assignee_id": "me"}, "assignee_id"),
        ({"unread_count": 0}, "unread_count"),
    ]:
        r = tenant.api.patch(f"/api/conversations/{conv.id}", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["details"]["fields"][0]["field"] == field


def test_read_sets_unread_to_zero(service, tenant):
    conv = tenant.conversation(messages=4)
    r = tenant.api.post(f"/api/conversations/{conv.id}/read")
    assert r.status_code == 200
    assert r.json()["unread_count"] == 0
    assert tenant.api.get(f"/api/conversations/{conv.id}").json()["unread_count"] == 0
    [event] = events_of(service, tenant.org_id, "conversation.updated")
    assert event.data == r.json()
    assert tenant.api.get("/api/conversations", params={"unread": "true"}).json()["data"] == []
    # Reading a read conversation changes nothing.
    assert tenant.api.post(f"/api/conversations/{conv.id}/read").json()["unread_count"] == 0
    assert len(events_of(service, tenant.org_id, "conversation.updated")) == 1


def test_messages_default_to_the_latest_page_oldest_first(service, tenant):
    conv = tenant.conversation(messages=7)
    m = message_ids(service, conv.id)
    r = tenant.api.get(f"/api/conversations/{conv.id}/messages", params={"limit": 3})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [x["id"] for x in page["data"]] == m[4:7]
    assert [x["content"] for x in page["data"]] == ["message 5", "message 6", "message 7"]
    assert page["pagination"] == {"total": 7, "limit": 3, "has_more": True,
                                  "before": m[4], "after": m[6]}
    everything = tenant.api.get(f"/api/conversations/{conv.id}/messages").json()
    assert [x["id"] for x in everything["data"]] == m
    assert everything["pagination"]["has_more"] is False
    assert everything["pagination"]["limit"] == 50


def test_messages_before_walks_back_in_history(service, tenant):
    conv = tenant.conversation(messages=7)
    m = message_ids(service, conv.id)
    url = f"/api/conversations/{conv.id}/messages"
    older = tenant.api.get(url, params={"before": m[4], "limit": 3}).json()
    assert [x["id"] for x in older["data"]] == m[1:4]
    assert older["pagination"]["has_more"] is True
    oldest = tenant.api.get(url, params={"before": older["pagination"]["before"],
                                         "limit": 3}).json()
    assert [x["id"] for x in oldest["data"]] == m[0:1]
    assert oldest["pagination"]["has_more"] is False
    assert tenant.api.get(url, params={"before": m[0]}).json()["data"] == []


def test_messages_after_catches_up(service, tenant):
    conv = tenant.conversation(messages=7)
    m = message_ids(service, conv.id)
    url = f"/api/conversations/{conv.id}/messages"
    newer = tenant.api.get(url, params={"after": m[1], "limit": 3}).json()
    assert [x["id"] for x in newer["data"]] == m[2:5]
    assert newer["pagination"]["has_more"] is True
    rest = tenant.api.get(url, params={"after": newer["pagination"]["after"],
                                       "limit": 3}).json()
    assert [x["id"] for x in rest["data"]] == m[5:7]
    assert rest["pagination"]["has_more"] is False
    caught_up = tenant.api.get(url, params={"after": m[6]}).json()
    assert caught_up["data"] == []
    assert caught_up["pagination"]["has_more"] is False
    assert caught_up["pagination"]["after"] == m[6]
    from_start = tenant.api.get(url, params={"after": 0, "limit": 2}).json()
    assert [x["id"] for x in from_start["data"]] == m[0:2]


def test_messages_of_other_conversations_never_appear(service, tenant):
    conv = tenant.conversation(messages=2)
    other = tenant.conversation(messages=2)
    mine = message_ids(service, conv.id)
    page = tenant.api.get(f"/api/conversations/{conv.id}/messages",
                          params={"after": 0}).json()
    assert [x["id"] for x in page["data"]] == mine
    assert page["pagination"]["total"] == 2
    assert not set(mine) & set(message_ids(service, other.id))


def test_messages_reject_both_cursors_and_bad_limits(service, tenant):
    conv = tenant.conversation(messages=2)
    url = f"/api/conversations/{conv.id}/messages"
    r = tenant.api.get(url, params={"before": 5, "after": 1})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "before or after" in r.json()["error"]["message"]
    for bad in ({"limit": 0}, {"limit": 201}, {"before": 0}, {"after": -1}, {"before": "x"}):
        r = tenant.api.get(url, params=bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["details"]["fields"][0]["field"] == next(iter(bad))


def test_each_message_shows_direction_status_external_id_attachments_and_timestamps(
    service, tenant
):
    conv = tenant.conversation(messages=1)
    agent, _ = tenant.user("agent")
    sent_at = datetime(2020, 1, 15, 16, 35, tzinfo=UTC)

    async def add_reply() -> None:
        async with service.db.session() as session:
            session.add(Message(
                organization_id=tenant.org_id, conversation_id=conv.id,
                channel_id=conv.channel_id, direction="outbound", sender_user_id=agent.id,
                content="See the attached invoice", content_type="document",
                attachments=[{"type": "document", "url": "https://files.example/inv.pdf",
                              "filename": "inv.pdf"}],
                external_id="wamid.OUT1", status="delivered", platform_timestamp=sent_at,
            ))
            await session.commit()

    service.run(add_reply())
    inbound, outbound = tenant.api.get(f"/api/conversations/{conv.id}/messages").json()["data"]
    assert inbound["direction"] == "inbound"
    assert inbound["status"] == "received"
    assert inbound["sender_contact_id"] == conv.contact_id
    assert inbound["sender_user_id"] is None
    assert inbound["external_id"].startswith("ext-")
    assert inbound["attachments"] == []
    assert inbound["private"] is False
    assert outbound["direction"] == "outbound"
    assert outbound["status"] == "delivered"
    assert outbound["sender_user_id"] == agent.id
    assert outbound["external_id"] == "wamid.OUT1"
    assert outbound["content_type"] == "document"
    assert outbound["attachments"] == [{"type": "document", "url": "https://files.example/inv.pdf",
                                        "filename": "inv.pdf"}]
    assert outbound["platform_timestamp"] == "2020-01-15T16:35:00Z"
    assert outbound["created_at"].endswith("Z")
    assert outbound["created_at"] > outbound["platform_timestamp"]
    assert outbound["conversation_id"] == conv.id
    assert outbound["channel_id"] == conv.channel_id


def test_conversations_of_another_organization_are_invisible(tenant, other_tenant):
    theirs = other_tenant.conversation(messages=2)
    base = f"/api/conversations/{theirs.id}"
    assert tenant.api.get(base).status_code == 404
    assert tenant.api.patch(base, json={"status": "closed"}).status_code == 404
    assert tenant.api.post(f"{base}/read").status_code == 404
    r = tenant.api.get(f"{base}/messages")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert tenant.api.get("/api/conversations").json()["data"] == []
    assert tenant.api.get("/api/conversations",
                          params={"channel_id": theirs.channel_id}).json()["data"] == []
    assert other_tenant.api.get(base).json()["unread_count"] == 2


def test_ids_no_row_can_have_answer_404(tenant):
    for path in ("/api/conversations/2147483648", "/api/conversations/99999999999999999999",
                 "/api/contacts/9223372036854775808", "/api/leads/18446744073709551616"):
        r = tenant.api.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    for params in ({"assignee_id": 2**31}, {"channel_id": 2**40}, {"contact_id": 2**63}):
        r = tenant.api.get("/api/conversations", params=params)
        assert r.status_code == 422, (params, r.text)
    conv = tenant.conversation()
    r = tenant.api.patch(f"/api/conversations/{conv.id}", json={"assignee_id": 2**40})
    assert r.status_code == 422
    r = tenant.api.get(f"/api/conversations/{conv.id}/messages", params={"before": 2**64})
    assert r.status_code == 422
