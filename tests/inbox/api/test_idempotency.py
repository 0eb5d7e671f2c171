"""Idempotency-Key on replies: each credential's keys are its own, a retry of the same
request answers the first message, and a key reused for another request is a 422."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlmodel import col

from inbox.models import Message
from tests.inbox.platforms import events_of, rows


def messages_url(conversation_id: int) -> str:
    return f"/api/conversations/{conversation_id}/messages"


def send(api: Any, conversation_id: int, key: str, content: str, **extra: Any) -> Any:
    return api.post(
        messages_url(conversation_id),
        json={"content": content, **extra},
        headers={"Idempotency-Key": key},
    )


def outbound(service: Any, conversation_id: int) -> list[Message]:
    return rows(
        service,
        Message,
        col(Message.conversation_id) == conversation_id,
        col(Message.direction) == "outbound",
    )


def test_two_agents_sending_with_the_same_key_each_get_their_own_reply(service, tenant):
    conv = tenant.conversation()
    ana, ana_api = tenant.user("agent")
    bob, bob_api = tenant.user("agent")

    first = send(ana_api, conv.id, "reply-1", "From Ana")
    second = send(bob_api, conv.id, "reply-1", "From Bob")

    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.json()["content"] == "From Bob"
    assert second.json()["sender_user_id"] == bob.id
    assert "idempotent-replayed" not in second.headers
    assert [(m.content, m.sender_user_id) for m in outbound(service, conv.id)] == [
        ("From Ana", ana.id),
        ("From Bob", bob.id),
    ]
    # Each one's retry answers with their own reply.
    for api, answer in ((ana_api, first), (bob_api, second)):
        again = send(api, conv.id, "reply-1", answer.json()["content"])
        assert again.status_code == 200
        assert again.json()["id"] == answer.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
    assert len(outbound(service, conv.id)) == 2


def test_an_api_key_and_a_user_have_keys_of_their_own(service, tenant):
    conv = tenant.conversation()
    key_api = service.client(tenant.api_key())
    other_key_api = service.client(tenant.api_key())

    answers = [
        send(api, conv.id, "same-key", "Same words")
        for api in (tenant.api, key_api, other_key_api)
    ]

    assert [r.status_code for r in answers] == [201, 201, 201]
    assert len({r.json()["id"] for r in answers}) == 3
    assert len(outbound(service, conv.id)) == 3


def test_a_key_reused_for_another_request_is_refused_and_changes_nothing(service, tenant):
    conv = tenant.conversation()
    elsewhere = tenant.conversation()
    first = send(tenant.api, conv.id, "k-42", "Your order shipped", private=False)
    assert first.status_code == 201
    sent_before = len(events_of(service, tenant.org_id, "message.sent"))

    for r in (
        send(tenant.api, conv.id, "k-42", "Your order shipped today"),
        send(tenant.api, conv.id, "k-42", "Your order shipped", private=True),
        send(tenant.api, conv.id, "k-42", "Your order shipped",
             attachments=[{"type": "image", "url": "https://cdn.example/a.png"}]),
        send(tenant.api, elsewhere.id, "k-42", "Your order shipped"),
    ):
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert "different request" in error["message"]
        assert error["details"] == {"idempotency_key": "k-42", "message_id": first.json()["id"]}

    assert [m.id for m in outbound(service, conv.id)] == [first.json()["id"]]
    assert outbound(service, elsewhere.id) == []
    assert len(events_of(service, tenant.org_id, "message.sent")) == sent_before
    # The very request it was first used with is still answered by its message; the
    # body's defaults count as sent ("private": false is what was meant).
    again = send(tenant.api, conv.id, "k-42", "Your order shipped")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])


def test_one_key_sent_at_once_by_many_clients_stores_one_reply(service, tenant):
    conv = tenant.conversation()
    clients = [service.client(service.token_for(tenant.owner)) for _ in range(8)]

    def same(api: Any) -> Any:
        return send(api, conv.id, "burst", "Only once")

    def different(pair: tuple[int, Any]) -> Any:
        return send(pair[1], conv.id, "burst-2", f"Version {pair[0]}")

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(same, clients))
        versions = list(pool.map(different, enumerate(clients)))

    assert sorted(r.status_code for r in answers) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in answers}) == 1
    # Of eight different requests under one key, one is stored; the others are told.
    assert sorted(r.status_code for r in versions) == [201] + [422] * 7
    assert {r.json()["error"]["code"] for r in versions if r.status_code == 422} == {
        "IDEMPOTENCY_KEY_REUSED"
    }
    [kept] = [r.json()["content"] for r in versions if r.status_code == 201]
    assert [m.content for m in outbound(service, conv.id)] == ["Only once", kept]
