"""Replies on the generic channel: POSTed, signed, to the channel's callback_url."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support import LiveServer

from connectors import standard_webhooks
from inbox.app import create_app
from inbox.db import Database
from tests.inbox.conftest import Service, make_settings
from tests.inbox.receiver import Answer, Receiver, eventually


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def generic_conversation(
    service: Any, tenant: Any, settings: dict[str, Any], **message: str
) -> tuple[int, int]:
    """A generic channel with ``settings`` and a customer's conversation on it, begun
    with a message of ``message``'s fields."""
    made = tenant.api.post(
        "/api/channels", json={"kind": "generic", "name": "CRM", "settings": settings}
    )
    assert made.status_code == 201, made.text
    key = tenant.api_key(scopes=("ingest",))
    sent = service.client().post(
        "/webhooks/messages/incoming",
        json={"from": "+15550123456", "content": "Any news?", "platform": "crm", **message},
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
        # What the API shows for a secret that is set is not a secret.
        (
            {"callback_url": "https://crm.example.com/r", "callback_secret": "*"},
            "settings.callback_secret",
        ),
        # Of the right size, but anyone could guess it.
        (
            {
                "callback_url": "https://crm.example.com/r",
                "callback_secret": "whsec_" + base64.b64encode(b"\0" * 32).decode(),
            },
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


def test_a_secret_cannot_be_replaced_by_the_stand_in_the_api_shows(tenant: Any) -> None:
    secret = standard_webhooks.new_secret()
    made = tenant.api.post(
        "/api/channels",
        json={
            "kind": "generic",
            "name": "CRM",
            "settings": {"callback_url": "http://127.0.0.1:9/r", "callback_secret": secret},
        },
    )
    assert made.status_code == 201, made.text
    path = f"/api/channels/{made.json()['id']}"

    starred = tenant.api.patch(path, json={"settings": {"callback_secret": "*"}})

    assert starred.status_code == 422, starred.text
    assert starred.json()["error"]["details"]["fields"][0]["field"] == "settings.callback_secret"
    # Left out, the secret is kept.
    moved = tenant.api.patch(path, json={"settings": {"callback_url": "http://127.0.0.1:9/n"}})
    assert moved.status_code == 200, moved.text


def sent_message(tenant: Any, conv_id: int, message_id: int) -> dict[str, Any]:
    return eventually(  # type: ignore[no-any-return]
        lambda: next(
            (
                m
                for m in tenant.api.get(f"/api/conversations/{conv_id}/messages").json()["data"]
                if m["id"] == message_id and m["status"] == "sent"
            ),
            None,
        )
    )


@pytest.mark.parametrize(
    "answer", [b'{"id": 42}', b'{"id": ""}', b'{"id": "' + b"x" * 256 + b'"}', b'{"id": [1]}']
)
def test_an_answered_id_a_message_cannot_hold_is_not_kept(
    service: Any, tenant: Any, receiver: Receiver, answer: bytes
) -> None:
    receiver.answer(Answer(200, body=answer))
    _channel_id, conv_id = generic_conversation(
        service,
        tenant,
        {"callback_url": receiver.url, "callback_secret": standard_webhooks.new_secret()},
    )
    r = tenant.api.post(f"/api/conversations/{conv_id}/messages", json={"content": "Tomorrow."})
    message_id = r.json()["id"]

    sent = sent_message(tenant, conv_id, message_id)

    assert sent["external_id"] == f"msg_reply_{message_id}"


def test_an_answered_id_another_message_holds_leaves_the_reply_without_one(
    service: Any, tenant: Any, receiver: Receiver
) -> None:
    # The customer's own message came in with the id the callback then answers.
    _channel_id, conv_id = generic_conversation(
        service,
        tenant,
        {"callback_url": receiver.url, "callback_secret": standard_webhooks.new_secret()},
        external_id="crm-1",
    )
    receiver.answer(Answer(200, body=b'{"id": "crm-1"}'), Answer(200, body=b'{"id": "crm-2"}'))
    first = tenant.api.post(f"/api/conversations/{conv_id}/messages", json={"content": "One"})
    second = tenant.api.post(f"/api/conversations/{conv_id}/messages", json={"content": "Two"})

    clashing = sent_message(tenant, conv_id, first.json()["id"])
    after = sent_message(tenant, conv_id, second.json()["id"])

    assert clashing["external_id"] is None
    assert after["external_id"] == "crm-2"
    incoming = tenant.api.get(f"/api/conversations/{conv_id}/messages").json()["data"]
    assert [m["external_id"] for m in incoming if m["direction"] == "inbound"] == ["crm-1"]


class _Held(BaseHTTPRequestHandler):
    """Takes the request, then answers only once ``release`` is set."""

    arrived = threading.Event()
    release = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).arrived.set()
        type(self).release.wait(30)
        try:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        except OSError:
            pass  # the sender gave up

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def patient(own_database: str, loop: Any) -> Iterator[Service]:
    """A service of its own whose callbacks may take 30 s: longer than a test waits."""
    settings = make_settings(own_database, webhook_timeout=30.0)
    server = LiveServer(create_app(settings), loop)
    server.start()
    db = Database(own_database)
    svc = Service(server.url, server.ws_url, settings, db, loop, db.dialect)
    yield svc
    for client in svc.clients:
        client.close()
    loop.run(db.dispose())
    server.stop()


def test_a_slow_callback_does_not_hold_up_another_channels_replies(
    patient: Service, receiver: Receiver
) -> None:
    held = type("Held", (_Held,), {"arrived": threading.Event(), "release": threading.Event()})
    slow = ThreadingHTTPServer(("127.0.0.1", 0), held)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    try:
        waiting, answering = patient.new_tenant(), patient.new_tenant()
        secret = standard_webhooks.new_secret()
        _c, slow_conv = generic_conversation(
            patient,
            waiting,
            {
                "callback_url": f"http://127.0.0.1:{slow.server_address[1]}/r",
                "callback_secret": secret,
            },
        )
        _c, fast_conv = generic_conversation(
            patient, answering, {"callback_url": receiver.url, "callback_secret": secret}
        )
        waiting.api.post(f"/api/conversations/{slow_conv}/messages", json={"content": "Slow"})
        assert held.arrived.wait(15), "the slow callback never got its reply"

        answering.api.post(f"/api/conversations/{fast_conv}/messages", json={"content": "Fast"})

        [fast] = receiver.received(1)
        assert fast.json()["content"] == "Fast"
        assert not held.release.is_set()  # the slow one is still waiting for its answer
    finally:
        held.release.set()
        slow.shutdown()
        slow.server_close()
