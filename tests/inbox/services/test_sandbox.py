"""Sandbox channels: a reply goes queued → sent → delivered (→ read) with no request to
any platform, the reports arriving through the status webhook's path as
``message.status`` events; ``inbox demo`` seeds such channels.

Each test runs a service of its own on a fresh database of each backend, whose platform
API bases point at a recording fake that must hear nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from support import BackgroundLoop, LiveServer

from connectors.sandbox import Report, is_sandbox
from connectors.types import StatusUpdate
from inbox.api.channels import channel_public
from inbox.app import create_app
from inbox.db import Database
from inbox.demo import DEMO_OWNER, seed_demo
from inbox.models import Channel, Message, User, utcnow
from inbox.services.channel_secrets import ChannelSecrets
from inbox.services.group_commit import GroupCommit
from inbox.services.outbox import NullSink
from inbox.services.sandbox import SandboxReports
from tests.connectors.fake_platform import FakePlatform
from tests.inbox.conftest import Service, make_settings
from tests.inbox.live.wsclient import frames_until, open_ws, ready, rest
from tests.inbox.platforms import (
    events_of,
    meta_headers,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    wait_for,
    whatsapp_channel,
    whatsapp_text,
)

# -- a service of its own ----------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet_platform() -> Iterator[FakePlatform]:
    """Where the service's platform APIs point: a sandbox channel must never call it."""
    with FakePlatform() as fake:
        yield fake


class Running:
    """A live service on ``database_url``; ``stop`` ends it the way a deploy does."""

    def __init__(self, database_url: str, loop: BackgroundLoop, platform: FakePlatform) -> None:
        # No INBOX_PUBLIC_URL: a sandbox SMS channel needs no Twilio status callback.
        settings = make_settings(
            database_url, graph_api_url=platform.base_url, twilio_api_url=platform.base_url
        )
        assert settings.public_url is None
        self.app = create_app(settings)
        self.server = LiveServer(self.app, loop)
        self.server.start()
        db = Database(database_url)
        self.service = Service(
            self.server.url, self.server.ws_url, settings, db, loop, db.dialect, app=self.app
        )

    def stop(self) -> None:
        if not self.server.server.should_exit:
            self.server.stop()

    def close(self) -> None:
        self.stop()
        for client in self.service.clients:
            client.close()
        self.service.run(self.service.db.dispose())


@pytest.fixture()
def running(
    own_database: str, loop: BackgroundLoop, quiet_platform: FakePlatform
) -> Iterator[Running]:
    quiet_platform.reset()
    served = Running(own_database, loop, quiet_platform)
    yield served
    served.close()


@pytest.fixture()
def sandbox_service(running: Running) -> Service:
    return running.service


# -- helpers -------------------------------------------------------------------------------


def status_frames(frames: list[dict[str, Any]], message_id: int) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "message.status" and f["data"]["id"] == message_id]


async def follow_statuses(
    ws: Any, message_id: int, last: str, timeout: float = 20.0
) -> list[tuple[float, dict[str, Any]]]:
    """The message's status events up to ``last``, each with when it arrived."""
    seen: list[tuple[float, dict[str, Any]]] = []

    def done(frame: dict[str, Any]) -> bool:
        if frame["type"] == "message.status" and frame["data"]["id"] == message_id:
            seen.append((time.monotonic(), frame))
            return bool(frame["data"]["status"] == last)
        return False

    await frames_until(ws, done, timeout)
    return seen


def stored_statuses(service: Service, org_id: int, message_id: int) -> list[str]:
    return [
        e.data["status"]
        for e in events_of(service, org_id, "message.status")
        if e.data["id"] == message_id
    ]


# -- the loop of a reply -----------------------------------------------------------------


async def test_a_sandbox_whatsapp_reply_is_sent_delivered_and_read_with_no_request_made(
    sandbox_service: Service, quiet_platform: FakePlatform
) -> None:
    service = sandbox_service
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant, sandbox=True)
    shown = tenant.api.get(f"/api/channels/{channel.id}").json()
    assert shown["settings"]["sandbox"] is True
    assert "access_token" not in shown["settings"]
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        body = whatsapp_text(channel, "wamid.sandbox-in-1", "Do you ship to Lisbon?")
        r = await api.post(
            "/webhooks/whatsapp", content=body, headers=meta_headers(body, channel.secret)
        )
        assert r.status_code == 200, r.text
        received = await frames_until(ws, lambda f: f["type"] == "message.received")
        conv_id = received[-1]["data"]["conversation_id"]

        posted = await api.post(
            f"/api/conversations/{conv_id}/messages", json={"content": "Yes, in 3 days."}
        )
        assert posted.status_code == 201, posted.text
        assert posted.json()["status"] == "queued"
        message_id = posted.json()["id"]
        statuses = await follow_statuses(ws, message_id, "read")

        assert [f["data"]["status"] for _, f in statuses] == ["sent", "delivered", "read"]
        [external_id] = {f["data"]["external_id"] for _, f in statuses}
        assert external_id.startswith("sandbox.")
        # A moment apart, as a platform's reports come: a person sees each step.
        (sent_at, _), (delivered_at, _), (read_at, _) = statuses
        assert delivered_at - sent_at > 0.5 and read_at - delivered_at > 0.5

        listed = (await api.get(f"/api/conversations/{conv_id}/messages")).json()["data"]
        [reply] = [m for m in listed if m["id"] == message_id]
        assert (reply["status"], reply["external_id"]) == ("read", external_id)
        assert reply["error_code"] is None
        conversation = (await api.get(f"/api/conversations/{conv_id}")).json()
        assert conversation["first_response_seconds"] is not None

    # Stored in the outbox like a platform's status webhook, in order, once each.
    assert stored_statuses(service, tenant.org_id, message_id) == ["sent", "delivered", "read"]
    assert quiet_platform.requests == []


async def test_a_sandbox_sms_reply_is_reported_delivered_without_a_public_url(
    sandbox_service: Service, quiet_platform: FakePlatform
) -> None:
    service = sandbox_service
    tenant = service.new_tenant()
    channel = sms_channel(tenant, sandbox=True)
    r = post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), channel.secret)
    assert r.status_code == 200, r.text
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        [conv] = (await api.get("/api/conversations")).json()["data"]
        posted = await api.post(f"/api/conversations/{conv['id']}/messages", json={"content": "Ok"})
        assert posted.status_code == 201, posted.text
        message_id = posted.json()["id"]
        statuses = await follow_statuses(ws, message_id, "delivered")
        assert [f["data"]["status"] for _, f in statuses] == ["sent", "delivered"]
        # SMS has no read receipts, and the sandbox invents none.
        await asyncio.sleep(2.5)
    assert stored_statuses(service, tenant.org_id, message_id) == ["sent", "delivered"]
    assert quiet_platform.requests == []


async def test_a_channel_that_is_not_a_sandbox_still_calls_its_platform(
    sandbox_service: Service, quiet_platform: FakePlatform
) -> None:
    service = sandbox_service
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant)
    assert "sandbox" not in tenant.api.get(f"/api/channels/{channel.id}").json()["settings"]
    body = whatsapp_text(channel, "wamid.real-in-1", "Hello?")
    r = service.client().post(
        "/webhooks/whatsapp", content=body, headers=meta_headers(body, channel.secret)
    )
    assert r.status_code == 200, r.text
    [conv] = tenant.api.get("/api/conversations").json()["data"]
    message_id = tenant.api.post(
        f"/api/conversations/{conv['id']}/messages", json={"content": "Hi!"}
    ).json()["id"]

    def sent() -> Message | None:
        [m] = rows(service, Message, col(Message.id) == message_id)
        return m if m.status == "sent" else None

    message = wait_for(sent, what="the reply to be sent")
    assert message.external_id is not None and not message.external_id.startswith("sandbox.")
    [request] = quiet_platform.requests
    assert request.path.endswith(f"/{channel.key}/messages")


def test_reports_still_pending_at_shutdown_are_dropped_and_the_stop_is_prompt(
    running: Running, quiet_platform: FakePlatform
) -> None:
    service = running.service
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant, sandbox=True)
    body = whatsapp_text(channel, "wamid.sandbox-in-2", "Still there?")
    r = service.client().post(
        "/webhooks/whatsapp", content=body, headers=meta_headers(body, channel.secret)
    )
    assert r.status_code == 200, r.text
    [conv] = tenant.api.get("/api/conversations").json()["data"]
    message_id = tenant.api.post(
        f"/api/conversations/{conv['id']}/messages", json={"content": "Yes!"}
    ).json()["id"]

    def sent() -> Message | None:
        [m] = rows(service, Message, col(Message.id) == message_id)
        return m if m.status == "sent" else None

    wait_for(sent, what="the reply to be sent")
    running.stop()
    # The stop did not wait for the reports: read, above all, comes 2.5 s after the send.
    at_stop = stored_statuses(service, tenant.org_id, message_id)
    assert at_stop in (["sent"], ["sent", "delivered"])
    time.sleep(3)
    assert stored_statuses(service, tenant.org_id, message_id) == at_stop
    assert quiet_platform.requests == []


# -- the timers ------------------------------------------------------------------------------


async def test_pending_reports_are_bounded_and_cancelled_on_close(own_database: str) -> None:
    db = Database(own_database)
    commits = GroupCommit(db, NullSink())
    reports = SandboxReports(commits, max_pending=2)
    channel = Channel(id=1, organization_id=1, kind="whatsapp", name="w", settings={})
    far = [
        Report(
            after=3600,
            event=StatusUpdate(
                platform="whatsapp",
                channel_key="1",
                external_id="sandbox.x",
                status="delivered",
                timestamp=utcnow() + timedelta(hours=1),
            ),
        )
    ]
    try:
        assert reports.schedule(channel, far) and reports.schedule(channel, far)
        assert not reports.schedule(channel, far)  # full: dropped, not queued
        assert reports.pending == 2
        assert not reports.schedule(channel, [])
        await asyncio.wait_for(reports.close(), 1.0)
        assert reports.pending == 0
        assert not reports.schedule(channel, far)  # closed
    finally:
        await db.dispose()


# -- inbox demo ------------------------------------------------------------------------------


async def test_the_demo_seeds_sandbox_channels_where_a_reply_goes_all_the_way(
    own_database: str, loop: BackgroundLoop, quiet_platform: FakePlatform
) -> None:
    db = Database(own_database)
    # The key the service started below reads them with.
    secrets = ChannelSecrets.from_settings(make_settings(own_database))
    try:
        await seed_demo(db, secrets)
        async with db.session() as session:
            owner = (await session.exec(select(User).where(User.email == DEMO_OWNER))).one()
            channels = list(
                await session.exec(
                    select(Channel).where(col(Channel.organization_id) == owner.organization_id)
                )
            )
    finally:
        await db.dispose()
    assert sorted(c.kind for c in channels) == ["instagram", "sms", "whatsapp"]
    for channel in channels:
        assert is_sandbox(secrets.open(channel))
        # What GET /api/channels shows.
        assert channel_public(channel).settings["sandbox"] is True

    quiet_platform.reset()
    served = await asyncio.to_thread(Running, own_database, loop, quiet_platform)
    try:
        service = served.service
        token = service.token_for(owner)
        async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
            await ready(ws)
            listed = (await api.get("/api/channels")).json()["data"]
            assert {c["kind"]: c["settings"]["sandbox"] for c in listed} == {
                "whatsapp": True,
                "instagram": True,
                "sms": True,
            }
            replies: dict[str, int] = {}
            for conv in (await api.get("/api/conversations")).json()["data"]:
                kind = conv["channel"]["kind"]
                if kind in replies:
                    continue
                r = await api.post(
                    f"/api/conversations/{conv['id']}/messages", json={"content": "Hello!"}
                )
                assert r.status_code == 201, r.text
                replies[kind] = r.json()["id"]
            assert set(replies) == {"whatsapp", "instagram", "sms"}
            await follow_statuses(ws, replies["whatsapp"], "read")
            figures = (await api.get("/api/analytics/live")).json()
        org_id = owner.organization_id
        assert stored_statuses(service, org_id, replies["whatsapp"]) == [
            "sent",
            "delivered",
            "read",
        ]
        assert stored_statuses(service, org_id, replies["sms"]) == ["sent", "delivered"]
        # The figures count the replies sent just now.
        assert figures["messages_today_outbound"] >= len(replies)
        assert quiet_platform.requests == []
    finally:
        await asyncio.to_thread(served.close)
