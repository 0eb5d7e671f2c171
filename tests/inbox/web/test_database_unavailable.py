"""When the database makes a request wait (a lock held elsewhere, a deadlock), the
request is bounded and answered: a deadlocked webhook batch runs again and succeeds, a
REST change that lost a deadlock or a statement past INBOX_DATABASE_STATEMENT_TIMEOUT
answers 503 with the error envelope, never a 500 and never a wait as long as the
database's."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import col
from support import LiveServer

from inbox.app import create_app
from inbox.db import Database
from inbox.models import Conversation, Event, Message
from inbox.settings import ConfigError, load_settings
from tests.connectors.fake_platform import Reply, slow
from tests.inbox.conftest import Service, make_settings
from tests.inbox.platforms import (
    meta_headers,
    post_meta,
    rows,
    unique_digits,
    wait_for,
    whatsapp_channel,
    whatsapp_status,
    whatsapp_text,
)

# Short, so that a request held up by a lock is answered quickly; PostgreSQL looks
# for deadlocks only after a second of waiting, so the deadlock tests keep the default.
SHORT_TIMEOUT = 0.5

Serve = Callable[..., Service]


@pytest.fixture()
def serve(own_database: str, loop: Any, platform: Any) -> Iterator[Serve]:
    """Start the service on a database of its own, with settings overridden."""
    started: list[tuple[Service, LiveServer]] = []

    def start(**overrides: Any) -> Service:
        settings = make_settings(
            own_database,
            graph_api_url=platform.base_url,
            twilio_api_url=platform.base_url,
            **overrides,
        )
        app = create_app(settings)
        server = LiveServer(app, loop)
        server.start()
        db = Database(own_database)
        service = Service(server.url, server.ws_url, settings, db, loop, db.dialect, app=app)
        started.append((service, server))
        return service

    yield start
    for service, server in started:
        for client in service.clients:
            client.close()
        loop.run(service.db.dispose())
        server.stop()


def postgres_only(service: Service) -> str:
    """The plain URL of the service's PostgreSQL database, for a session of our own."""
    assert service.dialect == "postgresql"
    return service.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")


async def until_waiting_on(watcher: asyncpg.Connection, table: str, timeout: float = 20) -> None:
    """Return once a session of the service waits for a lock in a statement on ``table``."""
    deadline = time.monotonic() + timeout
    while True:
        # Outside a transaction each query sees the activity afresh.
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND query ILIKE $1",
            f"%{table}%",
        )
        if waiting:
            return
        assert time.monotonic() < deadline, f"the service never waited for a lock on {table}"
        await asyncio.sleep(0.01)


async def holder(url: str) -> asyncpg.Connection:
    """A session in a transaction that will wait second in a deadlock it closes: with a
    long deadlock_timeout, the service's session (waiting first) is the one PostgreSQL
    rolls back."""
    connection = await asyncpg.connect(url)
    await connection.execute("BEGIN")
    await connection.execute("SET LOCAL deadlock_timeout = '60s'")
    return connection


def conversation_with_a_reply(service: Service, tenant: Any, channel: Any) -> tuple[int, int, str]:
    """(conversation id, reply id, the reply's platform id) of a customer who wrote in
    on ``channel`` and got a reply that the platform accepted."""
    r = post_meta(service, "whatsapp", whatsapp_text(channel, f"wamid.IN{unique_digits(9)}", "Hi"),
                  channel.secret)
    assert r.status_code == 200, r.text
    [conversation] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    wamid = f"wamid.OUT{unique_digits(9)}"

    async def reply() -> int:
        async with service.db.session() as session:
            message = Message(
                organization_id=tenant.org_id,
                conversation_id=conversation.id,
                channel_id=channel.id,
                direction="outbound",
                content="On its way",
                external_id=wamid,
                status="sent",
            )
            session.add(message)
            await session.commit()
            assert message.id is not None
            return message.id

    assert conversation.id is not None
    return conversation.id, service.run(reply()), wamid


@pytest.mark.backend("postgres")
async def test_a_webhook_batch_picked_as_a_deadlock_victim_runs_again_and_answers_200(serve):
    service = serve()
    url = postgres_only(service)
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant)
    _conversation, reply, wamid = conversation_with_a_reply(service, tenant, channel)
    body = whatsapp_status(channel, wamid, "delivered")
    watcher = await asyncpg.connect(url)
    other = await holder(url)
    try:
        # The other session holds the event counter (as a bump does: rows that refer to
        # the organization can still be inserted); the status batch updates the reply,
        # then waits for the counter; the other then wants the reply: a deadlock.
        await other.execute(
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE", tenant.org_id
        )
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as api:
            posted = asyncio.create_task(
                api.post("/webhooks/whatsapp", content=body,
                         headers=meta_headers(body, channel.secret))
            )
            await until_waiting_on(watcher, "organizations")
            # Returns once PostgreSQL has rolled the batch back.
            await other.execute(
                "UPDATE messages SET updated_at = now() WHERE id = $1", reply
            )
            await other.execute("COMMIT")
            r = await posted
    finally:
        await other.close()
        await watcher.close()
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == 1
    [message] = rows(service, Message, col(Message.id) == reply)
    assert message.status == "delivered"
    statuses = rows(service, Event, col(Event.organization_id) == tenant.org_id,
                    col(Event.type) == "message.status")
    assert [e.data["status"] for e in statuses] == ["delivered"]


@pytest.mark.backend("postgres")
async def test_a_rest_change_picked_as_a_deadlock_victim_answers_503_and_keeps_nothing(serve):
    service = serve()
    url = postgres_only(service)
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant)
    conversation, _reply, _wamid = conversation_with_a_reply(service, tenant, channel)
    before = rows(service, Message, col(Message.conversation_id) == conversation)
    watcher = await asyncpg.connect(url)
    other = await holder(url)
    try:
        await other.execute(
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE", tenant.org_id
        )
        async with httpx.AsyncClient(
            base_url=service.url, timeout=60,
            headers={"Authorization": f"Bearer {service.token_for(tenant.owner)}"},
        ) as api:
            posted = asyncio.create_task(
                api.post(f"/api/conversations/{conversation}/messages",
                         json={"content": "Thanks!"})
            )
            await until_waiting_on(watcher, "organizations")
            await other.execute(
                "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation
            )
            await other.execute("COMMIT")
            r = await posted
    finally:
        await other.close()
        await watcher.close()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert r.headers["retry-after"] == "1"
    assert rows(service, Message, col(Message.conversation_id) == conversation) == before


@pytest.mark.backend("postgres")
async def test_requests_held_up_by_a_locked_table_answer_503_after_the_statement_timeout(
    serve,
):
    service = serve(database_statement_timeout=SHORT_TIMEOUT)
    url = postgres_only(service)
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    other = await asyncpg.connect(url)
    try:
        await other.execute("BEGIN")
        await other.execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        # Far longer than the bound: without it, both would wait for the lock.
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as api:
            listed = await api.get("/api/contacts", headers={"Authorization": f"Bearer {token}"})
            body = whatsapp_text(channel, f"wamid.LOCKED{unique_digits(9)}", "Anyone?")
            delivered = await api.post("/webhooks/whatsapp", content=body,
                                       headers=meta_headers(body, channel.secret))
            ready = await api.get("/readyz")
    finally:
        await other.execute("ROLLBACK")
        await other.close()
    for r in (listed, delivered):
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "did not answer in time" in listed.json()["error"]["message"]
    # The database itself answers: the service stays in rotation.
    assert ready.status_code == 200
    # Once the lock is gone, the platform's retry is stored.
    again = post_meta(service, "whatsapp", body, channel.secret)
    assert (again.status_code, again.json()["stored"]) == (200, 1)


@pytest.mark.backend("sqlite")
def test_a_write_held_up_by_another_sqlite_writer_answers_503_after_the_timeout(serve):
    service = serve(database_statement_timeout=SHORT_TIMEOUT)
    tenant = service.new_tenant()
    path = make_url(service.settings.database_url).database
    assert path
    other = sqlite3.connect(path, isolation_level=None)
    try:
        # Another process (a backup, a shell) holds the write lock.
        other.execute("BEGIN IMMEDIATE")
        held = tenant.api.post("/api/leads", json={"name": "Ada"})
        # Readers do not wait for a writer.
        listed = tenant.api.get("/api/leads")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert held.status_code == 503, held.text
    assert held.json()["error"] == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "The database did not answer in time; retry later",
        "details": {},
    }
    assert listed.status_code == 200
    assert listed.json()["data"] == []
    assert tenant.api.post("/api/leads", json={"name": "Ada"}).status_code == 201


@pytest.mark.parametrize("value", ["0", "-1", "soon", "3601"])
def test_a_bad_statement_timeout_stops_start_up_naming_it(monkeypatch, value):
    monkeypatch.setenv("INBOX_ENV", "test")
    monkeypatch.setenv("INBOX_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("INBOX_DATABASE_STATEMENT_TIMEOUT", value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value).startswith("INBOX_DATABASE_STATEMENT_TIMEOUT: ")


def test_the_statement_timeout_is_a_few_seconds_unless_set(monkeypatch):
    monkeypatch.setenv("INBOX_ENV", "test")
    monkeypatch.setenv("INBOX_SECRET_KEY", "x" * 32)
    monkeypatch.delenv("INBOX_DATABASE_STATEMENT_TIMEOUT", raising=False)
    assert load_settings().database_statement_timeout == 5
    monkeypatch.setenv("INBOX_DATABASE_STATEMENT_TIMEOUT", "2.5")
    assert load_settings().database_statement_timeout == 2.5


@pytest.mark.backend("postgres")
async def test_a_send_whose_outcome_waits_for_a_lock_is_recorded_once_the_lock_is_gone(
    serve, platform
):
    # The platform took the message: however long the database holds the row, the
    # reply must end "sent" with the platform's id, not "interrupted" later.
    service = serve(database_statement_timeout=SHORT_TIMEOUT)
    url = postgres_only(service)
    tenant = service.new_tenant()
    channel = whatsapp_channel(tenant)
    r = post_meta(service, "whatsapp", whatsapp_text(channel, f"wamid.IN{unique_digits(9)}", "Hi"),
                  channel.secret)
    assert r.status_code == 200, r.text
    [conversation] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    wamid = f"wamid.HELD{unique_digits(9)}"
    sent_before = len(platform.requests)
    platform.enqueue(slow(1.0, Reply(200, {"messaging_product": "whatsapp",
                                           "messages": [{"id": wamid}]})))
    reply = tenant.api.post(f"/api/conversations/{conversation.id}/messages",
                            json={"content": "On its way"})
    assert reply.status_code == 201, reply.text
    message_id = reply.json()["id"]
    platform.wait_for_requests(sent_before + 1)

    other, watcher = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await other.execute("BEGIN")
        await other.execute("SELECT id FROM messages WHERE id = $1 FOR UPDATE", message_id)
        await until_waiting_on(watcher, "messages")
        # Several statement timeouts long: the worker's write gives up more than once.
        await asyncio.sleep(SHORT_TIMEOUT * 4)
    finally:
        await other.execute("ROLLBACK")
        await other.close()
        await watcher.close()

    def recorded() -> Message | None:
        [m] = rows(service, Message, col(Message.id) == message_id)
        return m if m.status != "queued" else None

    message = wait_for(recorded, what="the reply's outcome to be recorded")
    assert (message.status, message.external_id) == ("sent", wamid)
    statuses = [e.data["status"] for e in rows(service, Event, col(Event.type) == "message.status")
                if e.data["id"] == message_id]
    assert statuses == ["sent"]
