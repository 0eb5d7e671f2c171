"""Retry: an agent sends a failed reply again, and only a failed reply."""

from __future__ import annotations

from tests.connectors.fake_platform import whatsapp_outside_window
from tests.inbox.platforms import events_of
from tests.inbox.services.test_delivery import reply, requests_for, settled, statuses, written_in


def failed_reply(service, tenant, platform):
    platform.reset()
    platform.enqueue(whatsapp_outside_window())
    channel, conv = written_in(service, tenant, "whatsapp")
    message_id = reply(tenant, conv).json()["id"]
    assert settled(service, message_id).status == "failed"
    return channel, conv, message_id


def test_a_failed_reply_is_queued_again_and_sent_once(service, tenant, platform):
    channel, conv, message_id = failed_reply(service, tenant, platform)

    r = tenant.api.post(f"/api/messages/{message_id}/retry")

    assert r.status_code == 200, r.text
    queued = r.json()
    assert queued["id"] == message_id
    assert (queued["status"], queued["error_code"], queued["error"]) == ("queued", None, None)
    sent = settled(service, message_id)
    assert (sent.status, sent.attempts, sent.error_code) == ("sent", 1, None)
    assert [r.status for r in requests_for(platform, channel)] == [400, 200]
    # Every console follows it: failed, queued again, then sent.
    assert statuses(service, tenant.org_id, message_id) == ["failed", "queued", "sent"]
    [again] = [
        e.data
        for e in events_of(service, tenant.org_id, "message.status")
        if e.data["id"] == message_id and e.data["status"] == "queued"
    ]
    assert again["conversation_id"] == conv and again["error"] is None
    shown = tenant.api.get(f"/api/conversations/{conv}/messages").json()["data"][-1]
    assert (shown["id"], shown["status"]) == (message_id, "sent")


def test_a_message_that_did_not_fail_cannot_be_retried(service, tenant, platform):
    platform.reset()
    _channel, conv = written_in(service, tenant, "whatsapp")
    sent_id = reply(tenant, conv).json()["id"]
    assert settled(service, sent_id).status == "sent"
    note_id = reply(tenant, conv, "internal", private=True).json()["id"]
    [inbound] = [
        m for m in tenant.api.get(f"/api/conversations/{conv}/messages").json()["data"]
        if m["direction"] == "inbound"
    ]

    for message_id, says in (
        (sent_id, "this one is sent"),
        (note_id, "private note"),
        (inbound["id"], "customer's message"),
    ):
        r = tenant.api.post(f"/api/messages/{message_id}/retry")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "CONFLICT"
        assert says in r.json()["error"]["message"]
    assert statuses(service, tenant.org_id, sent_id) == ["sent"]


def test_another_organizations_message_is_not_found(service, tenant, other_tenant, platform):
    _channel, _conv, message_id = failed_reply(service, tenant, platform)

    r = other_tenant.api.post(f"/api/messages/{message_id}/retry")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert tenant.api.post("/api/messages/999999999/retry").status_code == 404
    assert settled(service, message_id).status == "failed"
