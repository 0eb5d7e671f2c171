"""Agents' replies go out through the channel's platform: stored as queued at once,
sent by the delivery worker with retries, recorded, and never sent twice."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from servers import free_port
from sqlmodel import col
from support import LiveServer

from inbox.app import create_app
from inbox.db import Database
from inbox.models import Conversation, Message, utcnow
from tests.connectors.fake_platform import (
    FakePlatform,
    RecordedRequest,
    Reply,
    graph_error,
    rate_limited,
    server_error,
    slow,
    whatsapp_outside_window,
)
from tests.inbox.conftest import Service, make_settings
from tests.inbox.platforms import (
    Connected,
    events_of,
    instagram_body,
    instagram_channel,
    post_meta,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    wait_for,
    whatsapp_body,
    whatsapp_channel,
)

# -- helpers ---------------------------------------------------------------------------


def written_in(service: Any, tenant: Any, kind: str) -> tuple[Connected, int]:
    """A contact wrote to a new channel of ``kind``: the channel and the conversation id."""
    if kind == "whatsapp":
        channel = whatsapp_channel(tenant)
        r = post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), channel.secret)
    elif kind == "instagram":
        channel = instagram_channel(tenant)
        r = post_meta(service, "instagram", instagram_body(channel, "text.json"), channel.secret)
    else:
        channel = sms_channel(tenant)
        r = post_twilio(
            service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), channel.secret
        )
    assert r.status_code == 200, r.text
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert conv.id is not None
    return channel, conv.id


def reply(
    tenant: Any, conversation_id: int, content: str = "Yes, in blue and green.", **extra: Any
) -> Any:
    headers = extra.pop("headers", {})
    return tenant.api.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": content, **extra},
        headers=headers,
    )


def stored(service: Any, message_id: int) -> Message:
    [message] = rows(service, Message, col(Message.id) == message_id)
    return message


def settled(service: Any, message_id: int, timeout: float = 20.0) -> Message:
    """The message once the worker is done with it (sent or failed)."""
    return wait_for(
        lambda: m if (m := stored(service, message_id)).status in ("sent", "failed") else None,
        timeout=timeout,
        what=f"message {message_id} to be sent or failed",
    )


def requests_for(platform: FakePlatform, channel: Connected) -> list[RecordedRequest]:
    if channel.kind == "sms":
        return [
            r
            for r in platform.requests
            if r.path.endswith("/Messages.json") and r.form().get("From") == [channel.key]
        ]
    return [r for r in platform.requests if r.path.endswith(f"/{channel.key}/messages")]


def statuses(service: Any, org_id: int, message_id: int) -> list[str]:
    return [
        e.data["status"]
        for e in events_of(service, org_id, "message.status")
        if e.data["id"] == message_id
    ]


# -- sending -----------------------------------------------------------------------------


def test_a_reply_is_queued_at_once_then_sent_through_whatsapp(service, tenant, platform):
    platform.reset()
    channel, conv = written_in(service, tenant, "whatsapp")

    r = reply(tenant, conv)

    assert r.status_code == 201, r.text
    queued = r.json()
    assert (queued["status"], queued["direction"], queued["external_id"]) == (
        "queued",
        "outbound",
        None,
    )
    [event] = events_of(service, tenant.org_id, "message.sent")
    assert (event.data["id"], event.data["status"]) == (queued["id"], "queued")

    sent = settled(service, queued["id"])
    assert sent.status == "sent"
    [request] = requests_for(platform, channel)
    assert request.headers["authorization"] == f"Bearer {channel.settings['access_token']}"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "text",
        "text": {"body": "Yes, in blue and green."},
    }
    assert sent.external_id == request.reply_json()["messages"][0]["id"]
    assert statuses(service, tenant.org_id, queued["id"]) == ["sent"]
    api_view = tenant.api.get(f"/api/conversations/{conv}/messages").json()["data"][-1]
    assert (api_view["id"], api_view["status"]) == (queued["id"], "sent")


def test_a_reply_is_sent_through_instagram(service, tenant, platform):
    platform.reset()
    channel, conv = written_in(service, tenant, "instagram")

    message_id = reply(tenant, conv, "We do!").json()["id"]

    sent = settled(service, message_id)
    assert sent.status == "sent"
    [request] = requests_for(platform, channel)
    assert request.headers["authorization"] == f"Bearer {channel.settings['access_token']}"
    assert request.json() == {
        "recipient": {"id": "1254459154682919"},
        "message": {"text": "We do!"},
    }
    assert sent.external_id == request.reply_json()["message_id"]


def test_a_reply_is_sent_through_twilio(service, tenant, platform):
    platform.reset()
    channel, conv = written_in(service, tenant, "sms")

    message_id = reply(tenant, conv, "Open 10 to 4 on Sundays.").json()["id"]

    sent = settled(service, message_id)
    assert sent.status == "sent"
    [request] = requests_for(platform, channel)
    sid = channel.settings["account_sid"]
    assert request.path == f"/2010-04-01/Accounts/{sid}/Messages.json"
    credentials = base64.b64encode(f"{sid}:{channel.settings['auth_token']}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"
    assert request.form() == {
        "To": ["+15558675310"],
        "From": [channel.key],
        "Body": ["Open 10 to 4 on Sundays."],
    }
    assert sent.external_id == request.reply_json()["sid"]


def test_rate_limits_and_server_errors_are_retried_until_sent(service, tenant, platform):
    platform.reset()
    platform.enqueue(rate_limited(retry_after=1), server_error())
    channel, conv = written_in(service, tenant, "whatsapp")

    message_id = reply(tenant, conv).json()["id"]

    sent = settled(service, message_id)
    assert (sent.status, sent.attempts, sent.error_code) == ("sent", 3, None)
    answers = [r.status for r in requests_for(platform, channel)]
    assert answers == [429, 500, 200]
    # Retries are not news: one status change, to sent.
    assert statuses(service, tenant.org_id, message_id) == ["sent"]


def test_a_permanent_error_fails_the_message_with_the_platform_code(service, tenant, platform):
    platform.reset()
    platform.enqueue(whatsapp_outside_window())
    channel, conv = written_in(service, tenant, "whatsapp")

    message_id = reply(tenant, conv).json()["id"]

    failed = settled(service, message_id)
    assert (failed.status, failed.error_code, failed.attempts) == ("failed", "131047", 1)
    assert failed.error is not None and "24 hours" in failed.error
    assert len(requests_for(platform, channel)) == 1
    [event] = [
        e for e in events_of(service, tenant.org_id, "message.status") if e.data["id"] == message_id
    ]
    assert (event.data["status"], event.data["error_code"]) == ("failed", "131047")
    shown = tenant.api.get(f"/api/conversations/{conv}/messages").json()["data"][-1]
    assert (shown["status"], shown["error_code"]) == ("failed", "131047")


def test_a_graph_rate_limit_sent_as_400_is_retried(service, tenant, platform):
    platform.reset()
    platform.enqueue(graph_error(130429, "Rate limit hit"))
    channel, conv = written_in(service, tenant, "whatsapp")

    sent = settled(service, reply(tenant, conv).json()["id"])

    assert sent.status == "sent"
    assert [r.status for r in requests_for(platform, channel)] == [400, 200]


def test_a_private_note_never_reaches_the_platform(service, tenant, platform):
    platform.reset()
    channel, conv = written_in(service, tenant, "whatsapp")

    note = reply(tenant, conv, "Customer is VIP, be nice.", private=True)
    public = reply(tenant, conv, "Hello!")

    assert note.status_code == 201
    assert note.json()["private"] is True
    settled(service, public.json()["id"])
    assert [r.json()["text"]["body"] for r in requests_for(platform, channel)] == ["Hello!"]
    kept = stored(service, note.json()["id"])
    assert (kept.private, kept.external_id, kept.attempts) == (True, None, 0)
    assert [e.data["id"] for e in events_of(service, tenant.org_id, "message.sent")] == [
        note.json()["id"],
        public.json()["id"],
    ]


def test_a_repeat_with_the_same_idempotency_key_sends_nothing_more(service, tenant, platform):
    platform.reset()
    channel, conv = written_in(service, tenant, "whatsapp")
    key = {"Idempotency-Key": "reply-7f3c"}

    first = reply(tenant, conv, headers=key)
    settled(service, first.json()["id"])
    again = reply(tenant, conv, headers=key)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["content"] == "Yes, in blue and green."
    assert again.headers.get("idempotent-replayed") == "true"
    # The key with another text is refused, and nothing of it is stored or sent.
    assert reply(tenant, conv, "A different text, same key", headers=key).status_code == 422
    # The worker had its chance to send anything new: a later reply goes out alone.
    settled(service, reply(tenant, conv, "Anything else?").json()["id"])
    bodies = [r.json()["text"]["body"] for r in requests_for(platform, channel)]
    assert bodies == ["Yes, in blue and green.", "Anything else?"]
    assert len(events_of(service, tenant.org_id, "message.sent")) == 2


def test_an_interrupted_attempt_is_failed_not_sent_again(service, tenant, platform):
    """The service died after recording an attempt: the platform may have the message."""
    platform.reset()
    channel, conv = written_in(service, tenant, "whatsapp")

    async def crashed_mid_send() -> Message:
        async with service.db.session() as session:
            message = Message(
                organization_id=tenant.org_id,
                conversation_id=conv,
                channel_id=channel.id,
                direction="outbound",
                content="Lost?",
                status="queued",
                attempts=1,
                attempt_started_at=utcnow() - timedelta(hours=1),
            )
            session.add(message)
            await session.commit()
            return message

    interrupted = service.run(crashed_mid_send())

    failed = settled(service, interrupted.id)
    assert (failed.status, failed.error_code) == ("failed", "interrupted")
    settled(service, reply(tenant, conv, "Next one").json()["id"])
    bodies = [r.json()["text"]["body"] for r in requests_for(platform, channel)]
    assert bodies == ["Next one"]
    assert statuses(service, tenant.org_id, interrupted.id) == ["failed"]


# -- restarts -----------------------------------------------------------------------------


class Deployment:
    """Servers started one after another on one database, as a restart does."""

    def __init__(self, database_url: str, loop: Any) -> None:
        self.database_url = database_url
        self.loop = loop
        self.db = Database(database_url)
        self.server: LiveServer | None = None
        self.services: list[Service] = []

    def start(self, api_url: str) -> Service:
        settings = make_settings(self.database_url, graph_api_url=api_url, twilio_api_url=api_url)
        self.server = LiveServer(create_app(settings), self.loop)
        self.server.start()
        service = Service(
            self.server.url, self.server.ws_url, settings, self.db, self.loop, self.db.dialect
        )
        self.services.append(service)
        return service

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def close(self) -> None:
        self.stop()
        for service in self.services:
            for client in service.clients:
                client.close()
        self.loop.run(self.db.dispose())


@pytest.fixture()
def deployment(own_database: str, loop: Any) -> Iterator[Deployment]:
    deployed = Deployment(own_database, loop)
    yield deployed
    deployed.close()


def test_queued_replies_survive_a_restart_and_are_sent_once(deployment, platform):
    platform.reset()
    # The first server cannot reach the platform: the reply stays queued.
    first = deployment.start(f"http://127.0.0.1:{free_port()}")
    tenant = first.new_tenant()
    channel, conv = written_in(first, tenant, "whatsapp")
    message_id = reply(tenant, conv, "Sent after the restart").json()["id"]
    wait_for(
        lambda: (m := stored(first, message_id)).attempts >= 1 and m.attempt_started_at is None,
        what="a failed first attempt",
    )
    deployment.stop()
    assert stored(first, message_id).status == "queued"

    second = deployment.start(platform.base_url)
    sent = settled(second, message_id)

    assert sent.status == "sent"
    # The new server also sends what is written to it afterwards, and nothing twice.
    tenant.api = second.client(second.token_for(tenant.owner))
    settled(second, reply(tenant, conv, "And this one").json()["id"])
    bodies = [r.json()["text"]["body"] for r in requests_for(platform, channel)]
    assert bodies == ["Sent after the restart", "And this one"]


def test_a_stop_during_a_send_records_its_outcome(deployment, platform):
    platform.reset()
    first = deployment.start(platform.base_url)
    tenant = first.new_tenant()
    channel, conv = written_in(first, tenant, "whatsapp")
    accepted = Reply(body={"messaging_product": "whatsapp", "messages": [{"id": "wamid.SLOW"}]})
    platform.enqueue(slow(1.0, then=accepted))
    message_id = reply(tenant, conv, "In flight").json()["id"]
    wait_for(lambda: requests_for(platform, channel), what="the send to start")

    deployment.stop()

    sent = stored(first, message_id)
    assert (sent.status, sent.external_id, sent.attempt_started_at) == ("sent", "wamid.SLOW", None)
    second = deployment.start(platform.base_url)
    tenant.api = second.client(second.token_for(tenant.owner))
    settled(second, reply(tenant, conv, "After").json()["id"])
    bodies = [r.json()["text"]["body"] for r in requests_for(platform, channel)]
    assert bodies == ["In flight", "After"]
