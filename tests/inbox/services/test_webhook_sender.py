"""Outgoing webhooks across restarts and processes: nothing lost, nothing sent twice to a
receiver that answered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from support import LiveServer

from inbox.app import create_app
from inbox.db import Database
from inbox.services.webhooks.active import TTL_SECONDS
from inbox.services.webhooks.outcomes import prune
from inbox.state import AppState
from tests.inbox.conftest import Service, make_settings
from tests.inbox.receiver import Receiver, eventually


class Servers:
    """Services on one database of their own, started and stopped as a test says."""

    def __init__(self, database_url: str, loop: Any) -> None:
        self.database_url = database_url
        self.loop = loop
        self.db = Database(database_url)
        self.running: list[LiveServer] = []
        self.states: list[AppState] = []
        self.services: list[Service] = []

    def start(self, **overrides: Any) -> Service:
        # Retries for long enough that a receiver down for a moment is back in time.
        overrides.setdefault("webhook_retry_schedule", [0.25] * 40)
        settings = make_settings(self.database_url, **overrides)
        server = LiveServer(create_app(settings, started=self.states.append), self.loop)
        server.start()
        self.running.append(server)
        service = Service(server.url, server.ws_url, settings, self.db, self.loop, self.db.dialect)
        self.services.append(service)
        return service

    def stop_all(self) -> None:
        for server in self.running:
            server.stop()
        self.running.clear()

    def close(self) -> None:
        self.stop_all()
        for service in self.services:
            for client in service.clients:
                client.close()
        self.loop.run(self.db.dispose())


@pytest.fixture()
def servers(own_database: str, loop: Any) -> Iterator[Servers]:
    made = Servers(own_database, loop)
    yield made
    made.close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def contacts(tenant: Any, n: int) -> list[int]:
    made = [tenant.api.post("/api/contacts", json={"name": f"C{i}"}) for i in range(n)]
    assert all(r.status_code == 201 for r in made)
    return [r.json()["id"] for r in made]


def test_events_committed_while_the_receiver_was_down_arrive_after_a_restart(
    servers: Servers, receiver: Receiver
) -> None:
    first = servers.start()
    tenant = first.new_tenant()
    hook = tenant.api.post(
        "/api/webhooks", json={"url": receiver.url, "events": ["contact.created"]}
    ).json()
    receiver.down()
    ids = contacts(tenant, 3)
    path = f"/api/webhooks/{hook['id']}/deliveries"
    [failing, *_] = eventually(
        lambda: [d for d in tenant.api.get(path).json()["data"] if d["attempt_log"]]
    )
    assert failing["attempt_log"][0]["status_code"] is None
    assert failing["attempt_log"][0]["error"]
    servers.stop_all()

    receiver.up()
    second = servers.start()
    tenant.api = second.client(second.token_for(tenant.owner))
    ids += contacts(tenant, 1)
    seen = receiver.received(4)

    assert sorted(r.json()["data"]["id"] for r in seen) == sorted(ids)
    assert len({r.headers["webhook-id"] for r in seen}) == 4
    assert all(r.verifies_with(hook["secret"]) for r in seen)


def test_two_processes_share_the_deliveries_without_sending_one_twice(
    servers: Servers, receiver: Receiver
) -> None:
    one, two = servers.start(), servers.start()
    tenant = one.new_tenant()
    hook = tenant.api.post(
        "/api/webhooks", json={"url": receiver.url, "events": ["contact.created"]}
    ).json()
    other = two.client(two.token_for(tenant.owner))
    made = []
    for i in range(20):
        api = tenant.api if i % 2 else other
        made.append(api.post("/api/contacts", json={"name": f"C{i}"}).json()["id"])

    receiver.received(20)
    # Once every delivery is recorded as done, nothing is left to send: what arrived is all.
    eventually(
        lambda: (
            len(
                tenant.api.get(
                    f"/api/webhooks/{hook['id']}/deliveries", params={"status": "succeeded"}
                ).json()["data"]
            )
            == 20
        )
    )
    ids = [r.json()["data"]["id"] for r in receiver.requests]
    assert sorted(ids) == sorted(made)


def test_finished_deliveries_past_the_retention_are_pruned(
    service: Service, tenant: Any, receiver: Receiver
) -> None:
    hook = tenant.api.post("/api/webhooks", json={"url": receiver.url, "events": ["*"]}).json()
    tenant.api.post(f"/api/webhooks/{hook['id']}/test")
    path = f"/api/webhooks/{hook['id']}/deliveries"
    eventually(lambda: tenant.api.get(path, params={"status": "succeeded"}).json()["data"])

    assert service.run(prune(service.db, timedelta(days=1))) == 0
    assert service.run(prune(service.db, timedelta(0))) >= 1
    assert tenant.api.get(path).json()["data"] == []


def test_ingest_without_an_active_endpoint_reads_nothing_of_the_webhooks_per_commit(
    servers: Servers,
) -> None:
    service = servers.start()
    tenant = service.new_tenant()
    turned_off = tenant.api.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"], "active": False}
    )
    assert turned_off.status_code == 201
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = servers.states[0].db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    started = time.monotonic()
    try:
        contacts(tenant, 40)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    elapsed = time.monotonic() - started

    assert not [s for s in statements if "webhook_deliveries" in s]
    # Only the set of organizations with an active endpoint is read, on its own clock.
    endpoint_reads = [s for s in statements if "webhook_endpoints" in s]
    assert len(endpoint_reads) <= 2 + elapsed / TTL_SECONDS


def test_with_one_request_in_flight_deliveries_arrive_in_event_order(
    servers: Servers, receiver: Receiver
) -> None:
    service = servers.start(webhook_concurrency=1)
    tenant = service.new_tenant()
    tenant.api.post("/api/webhooks", json={"url": receiver.url, "events": ["contact.created"]})

    made = contacts(tenant, 30)
    seen = receiver.received(30)

    assert [r.json()["data"]["id"] for r in seen] == made
    ids = [r.json()["id"] for r in seen]
    assert ids == sorted(ids)


def test_an_endpoint_made_through_another_process_gets_what_this_one_commits(
    servers: Servers, receiver: Receiver
) -> None:
    one, two = servers.start(), servers.start()
    tenant = one.new_tenant()
    on_two = two.client(two.token_for(tenant.owner))
    # Process two has seen commits, and that no organization had an endpoint.
    assert on_two.post("/api/contacts", json={"name": "Before"}).status_code == 201

    tenant.api.post("/api/webhooks", json={"url": receiver.url, "events": ["contact.created"]})
    made = [on_two.post("/api/contacts", json={"name": f"C{i}"}).json()["id"] for i in range(5)]

    seen = receiver.received(5)
    assert sorted(r.json()["data"]["id"] for r in seen) == sorted(made)
