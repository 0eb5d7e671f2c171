"""Outgoing webhooks through the API: registering an endpoint, what its receiver gets,
signed, retried, and what the delivery log shows."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors import standard_webhooks
from tests.inbox.receiver import Answer, Receiver, eventually


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def register(tenant: Any, url: str, events: list[str] | None = None) -> dict[str, Any]:
    r = tenant.api.post("/api/webhooks", json={"url": url, "events": events or ["*"]})
    assert r.status_code == 201, r.text
    return r.json()


def new_contact(tenant: Any, name: str = "Ada") -> dict[str, Any]:
    r = tenant.api.post("/api/contacts", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(tenant: Any, hook_id: int, **params: Any) -> list[dict[str, Any]]:
    r = tenant.api.get(f"/api/webhooks/{hook_id}/deliveries", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_an_event_reaches_the_receiver_signed_as_the_specification_says(
    tenant: Any, receiver: Receiver
) -> None:
    hook = register(tenant, receiver.url, ["contact.created"])
    assert hook["secret"].startswith("whsec_") and hook["active"] is True
    assert "secret" not in tenant.api.get(f"/api/webhooks/{hook['id']}").json()

    contact = new_contact(tenant)
    [request] = receiver.received(1)

    assert request.verifies_with(hook["secret"])
    envelope = request.json()
    assert envelope["type"] == "contact.created" and envelope["data"]["id"] == contact["id"]
    assert envelope["organization_id"] == tenant.org_id and envelope["id"] >= 1
    assert envelope["timestamp"].endswith("Z")
    assert request.headers["content-type"] == "application/json"
    done = eventually(
        lambda: [d for d in deliveries(tenant, hook["id"]) if d["status"] == "succeeded"]
    )
    assert done[0]["event_id"] == envelope["id"] and done[0]["event_type"] == "contact.created"
    [attempt] = done[0]["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["response_body"] == '{"ok":true}'


def test_events_not_asked_for_are_not_sent(tenant: Any, receiver: Receiver) -> None:
    hook = register(tenant, receiver.url, ["lead.created"])
    new_contact(tenant)
    tenant.api.post(f"/api/webhooks/{hook['id']}/test")
    [only] = receiver.received(1)
    assert only.json()["type"] == "webhook.test"


def test_a_receiver_answering_500_gets_the_same_delivery_again(
    tenant: Any, receiver: Receiver
) -> None:
    receiver.answer(Answer(500, body=b"x" * 5000), Answer(503, headers={"Retry-After": "0"}))
    hook = register(tenant, receiver.url)
    new_contact(tenant)
    seen = receiver.received(3)
    assert len({r.headers["webhook-id"] for r in seen}) == 1
    assert [r.status for r in seen] == [500, 503, 200]
    assert all(r.verifies_with(hook["secret"]) for r in seen)
    [done] = eventually(lambda: deliveries(tenant, hook["id"], status="succeeded"))
    log = done["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 503, 200]
    # Only the first KiB of an answer is kept.
    assert log[0]["response_body"] == "x" * 1024


def test_410_gone_disables_the_endpoint_and_says_so(tenant: Any, receiver: Receiver) -> None:
    watcher = Receiver()
    try:
        watching = register(tenant, watcher.url, ["webhook.disabled"])
        receiver.answer(Answer(410))
        hook = register(tenant, receiver.url, ["contact.created"])
        new_contact(tenant)
        [event] = watcher.received(1)
    finally:
        watcher.close()
    assert event.verifies_with(watching["secret"])
    assert event.json()["type"] == "webhook.disabled"
    assert event.json()["data"]["id"] == hook["id"]
    # Every agent's socket gets the event: the URL, the admins' to see, is not in it.
    assert event.json()["data"]["description"] == ""
    assert "url" not in event.json()["data"] and receiver.url not in event.body.decode()
    shown = tenant.api.get(f"/api/webhooks/{hook['id']}").json()
    assert shown["active"] is False and "410" in shown["disabled_reason"]
    assert len(receiver.requests) == 1
    [failed] = deliveries(tenant, hook["id"], status="failed")
    assert failed["last_status_code"] == 410
    # A disabled endpoint sends nothing until it is turned on again.
    refused = tenant.api.post(f"/api/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver")
    assert refused.status_code == 409
    turned_on = tenant.api.patch(f"/api/webhooks/{hook['id']}", json={"active": True})
    assert turned_on.json()["active"] is True and turned_on.json()["disabled_reason"] is None
    again = tenant.api.post(f"/api/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver")
    assert again.status_code == 202
    second = receiver.received(2)[1]
    assert second.headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]


def test_an_endpoint_failing_its_whole_schedule_is_disabled(
    tenant: Any, receiver: Receiver
) -> None:
    receiver.answer(Answer(500), Answer(500), Answer(500))
    hook = register(tenant, receiver.url)
    new_contact(tenant)
    # The first attempt and one per delay of the schedule (two in tests).
    receiver.received(3)
    shown = eventually(
        lambda: (h := tenant.api.get(f"/api/webhooks/{hook['id']}").json())["active"] is False and h
    )
    assert "retry schedule" in shown["disabled_reason"]
    [failed] = deliveries(tenant, hook["id"], status="failed")
    assert failed["attempts"] == 3 and len(failed["attempt_log"]) == 3


def test_during_a_rotation_both_secrets_sign(tenant: Any, receiver: Receiver) -> None:
    hook = register(tenant, receiver.url)
    rotated = tenant.api.post(f"/api/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != hook["secret"] and rotated.json()["previous_secret_expires_at"]
    tenant.api.post(f"/api/webhooks/{hook['id']}/test")
    [request] = receiver.received(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.verifies_with(new_secret) and request.verifies_with(hook["secret"])
    assert not request.verifies_with(standard_webhooks.new_secret())


def test_an_endpoint_never_gets_another_organizations_events(
    tenant: Any, other_tenant: Any, receiver: Receiver
) -> None:
    register(tenant, receiver.url, ["contact.created"])
    new_contact(other_tenant, "Not yours")
    mine = new_contact(tenant, "Yours")
    [request] = receiver.received(1)
    assert request.json()["data"]["id"] == mine["id"]
    assert request.json()["organization_id"] == tenant.org_id


def test_another_organizations_endpoint_is_not_found(tenant: Any, other_tenant: Any) -> None:
    hook = register(tenant, "http://127.0.0.1:9/hook")
    theirs = other_tenant.api
    assert theirs.get(f"/api/webhooks/{hook['id']}").status_code == 404
    assert theirs.patch(f"/api/webhooks/{hook['id']}", json={"active": False}).status_code == 404
    assert theirs.post(f"/api/webhooks/{hook['id']}/rotate-secret").status_code == 404
    assert theirs.get(f"/api/webhooks/{hook['id']}/deliveries").status_code == 404
    assert theirs.delete(f"/api/webhooks/{hook['id']}").status_code == 404
    assert theirs.get("/api/webhooks").json()["data"] == []
    assert tenant.api.delete(f"/api/webhooks/{hook['id']}").status_code == 204
    assert tenant.api.get(f"/api/webhooks/{hook['id']}").status_code == 404


def test_only_admins_manage_endpoints(tenant: Any) -> None:
    _agent, agent = tenant.user("agent")
    r = agent.post("/api/webhooks", json={"url": "https://example.com/h", "events": ["*"]})
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/h", "events": ["*"]}, "url"),
        ({"url": "https://user:pw@example.com/h", "events": ["*"]}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data", "events": ["*"]}, "url"),
        ({"url": "http://[fe80::1]/h", "events": ["*"]}, "url"),
        ({"url": "http://0.0.0.0/h", "events": ["*"]}, "url"),
        ({"url": "https://example.com/h", "events": []}, "events"),
        ({"url": "https://example.com/h", "events": ["*", "lead.created"]}, "events"),
        ({"url": "https://example.com/h", "events": ["Not An Event"]}, "events.0"),
        ({"url": "https://example.com/h", "events": ["*"], "secret": "x"}, "secret"),
    ],
)
def test_bad_endpoints_are_refused_with_the_field_named(
    tenant: Any, body: dict[str, Any], field: str
) -> None:
    r = tenant.api.post("/api/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["fields"][0]["field"] == field


def test_a_url_changed_to_a_metadata_address_is_refused(tenant: Any) -> None:
    hook = register(tenant, "http://127.0.0.1:9/hook")
    r = tenant.api.patch(f"/api/webhooks/{hook['id']}", json={"url": "http://169.254.169.254/"})
    assert r.status_code == 422 and "metadata" in r.json()["error"]["message"]


def test_deliveries_are_paged_newest_first(tenant: Any, receiver: Receiver) -> None:
    hook = register(tenant, receiver.url)
    for _ in range(3):
        tenant.api.post(f"/api/webhooks/{hook['id']}/test")
    receiver.received(3)
    first = tenant.api.get(f"/api/webhooks/{hook['id']}/deliveries", params={"limit": 2}).json()
    assert len(first["data"]) == 2 and first["next_cursor"] == first["data"][-1]["id"]
    rest = tenant.api.get(
        f"/api/webhooks/{hook['id']}/deliveries", params={"before": first["next_cursor"]}
    ).json()
    ids = [d["id"] for d in first["data"] + rest["data"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3 and rest["next_cursor"] is None
    bad = tenant.api.get(f"/api/webhooks/{hook['id']}/deliveries", params={"status": "lost"})
    assert bad.status_code == 422
    missing = tenant.api.post(f"/api/webhooks/{hook['id']}/deliveries/999999999/redeliver")
    assert missing.status_code == 404


def test_a_receiver_too_slow_to_answer_is_tried_again_with_the_same_id(
    tenant: Any, receiver: Receiver
) -> None:
    # Tests give receivers two seconds.
    receiver.answer(Answer(200, delay=2.5))
    hook = register(tenant, receiver.url)
    tenant.api.post(f"/api/webhooks/{hook['id']}/test")
    slow, again = receiver.received(2)
    assert slow.headers["webhook-id"] == again.headers["webhook-id"]
    [done] = eventually(lambda: deliveries(tenant, hook["id"], status="succeeded"))
    assert "no answer within" in done["attempt_log"][0]["error"]
    assert done["attempt_log"][0]["status_code"] is None


class _Compressing(BaseHTTPRequestHandler):
    """Answers 202 with a text body, gzipped when the request accepts gzip (as web
    servers do); records the Accept-Encoding each request asked for."""

    asked: list[str | None] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        accepted = self.headers.get("accept-encoding")
        type(self).asked.append(accepted)
        body = b"queued for processing " * 100
        self.send_response(202)
        if accepted and "gzip" in accepted:
            body = gzip.compress(body)
            self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_delivery_log_keeps_the_status_answered_and_the_answer_as_text(tenant: Any) -> None:
    handler = type("Compressing", (_Compressing,), {"asked": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = register(tenant, f"http://127.0.0.1:{server.server_address[1]}/hook")
        tenant.api.post(f"/api/webhooks/{hook['id']}/test")
        [done] = eventually(lambda: deliveries(tenant, hook["id"], status="succeeded"))
    finally:
        server.shutdown()
        server.server_close()
    assert done["last_status_code"] == 202
    [attempt] = done["attempt_log"]
    assert attempt["status_code"] == 202
    assert attempt["response_body"] == ("queued for processing " * 100)[:1024]
    assert all(asked in (None, "identity") for asked in handler.asked)
