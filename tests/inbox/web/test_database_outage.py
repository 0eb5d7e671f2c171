"""The database server stopped, then started again: while it is down webhooks answer 503
(never 200: the platform must retry them), /readyz and the REST API answer 503 with the
error envelope; once it is back the service recovers without a restart, and the
deliveries retried are kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from servers import PostgresServer
from sqlmodel import col
from support import LiveServer

from inbox import migrate
from inbox.app import create_app
from inbox.db import Database
from inbox.models import Message
from inbox.settings import async_database_url
from tests.inbox.conftest import Service, make_settings
from tests.inbox.platforms import post_meta, rows, wait_for, whatsapp_channel, whatsapp_text

pytestmark = pytest.mark.backend("postgres")


@pytest.fixture()
def database() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture()
def service(database: PostgresServer, loop: Any, platform: Any) -> Iterator[Service]:
    url = async_database_url(database.url)
    migrate.upgrade(url)
    settings = make_settings(url, graph_api_url=platform.base_url,
                             twilio_api_url=platform.base_url)
    server = LiveServer(create_app(settings), loop)
    server.start()
    db = Database(url)
    service = Service(server.url, server.ws_url, settings, db, loop, db.dialect)
    try:
        yield service
    finally:
        for client in service.clients:
            client.close()
        loop.run(db.dispose())
        server.stop()


def test_a_stopped_database_answers_503_and_the_service_recovers_once_it_is_back(
    service, database
):
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant)
    http = service.client()
    before = post_meta(service, "whatsapp", whatsapp_text(channel, "wamid.before", "Hi"),
                       channel.secret)
    assert before.status_code == 200, before.text

    database.stop()
    during = whatsapp_text(channel, "wamid.during", "Are you there?")
    webhook = post_meta(service, "whatsapp", during, channel.secret)
    assert webhook.status_code == 503
    assert http.get("/readyz").status_code == 503
    listed = tenant.api.get("/api/conversations")
    assert listed.status_code == 503
    assert listed.json()["error"]["code"] == "SERVICE_UNAVAILABLE"

    database.start()
    # The platform retries the delivery that got no 200 until it is taken.
    retried = wait_for(
        lambda: (r := post_meta(service, "whatsapp", during, channel.secret)).status_code == 200
        and r,
        timeout=30, what="the webhook to be taken again",
    )
    assert retried
    assert http.get("/readyz").status_code == 200
    assert tenant.api.get("/api/conversations").status_code == 200
    kept = rows(service, Message, col(Message.channel_id) == channel.id)
    assert sorted(m.external_id or "" for m in kept) == ["wamid.before", "wamid.during"]
