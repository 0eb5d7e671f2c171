"""An event that could not be sent must not poison the stream: the outbox refuses one
before commit, REST refuses the input that would make one, and a stored row that still
cannot be sent (written before these checks, or changed since) costs only itself — live
and on resume, the client gets an EVENT_UNREADABLE error frame in its place, then the
events after it, on a connection that stays open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from inbox.db import Database
from inbox.models import Contact, Event, Organization
from inbox.services import accounts
from inbox.services.group_commit import GroupCommit
from inbox.services.outbox import OutboxEvent, UnencodableEvent, UnitOfWork, unit_of_work
from tests.inbox.live.wsclient import (
    drain,
    events_until,
    frames_until,
    ids_of,
    on_loop,
    open_ws,
    ready,
    rest,
    stored,
)


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def _told(frames: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored events and errors: not the live figures and presence that come between."""
    return [f for f in frames if "id" in f or f["type"] == "error"]


def _unreadable(event_id: int, event_type: str) -> dict[str, Any]:
    return {
        "type": "error",
        "code": "EVENT_UNREADABLE",
        "message": f"event {event_id} ({event_type}) could not be sent; reload through REST",
        "event_id": event_id,
        "event_type": event_type,
    }


# -- REST refuses what would make an unsendable event ---------------------------------


async def test_custom_fields_252_deep_are_refused_and_the_stream_goes_on(service, tenant):
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api, await open_ws(service.url, token) as ws:
        assert (await ready(ws))["last_event_id"] == 0
        for levels in (252, 17):
            r = await api.post(
                "/api/contacts", json={"name": "Deep", "custom_fields": nested(levels)}
            )
            assert r.status_code == 422, r.text
            assert r.json()["error"]["details"]["fields"][0]["field"] == "custom_fields"
        assert (await api.get("/api/contacts")).json()["pagination"]["total"] == 0
        # Nothing was stored for them: the next event is the organization's first.
        custom = {"deep": nested(15)}
        r = await api.post("/api/contacts", json={"name": "Fits", "custom_fields": custom})
        assert r.status_code == 201, r.text
        (event,) = stored(await events_until(ws, 1))
        assert event["type"] == "contact.created"
        assert event["data"] == r.json() and event["data"]["custom_fields"] == custom
    async with await open_ws(service.url, token, "last_event_id=0") as ws:
        await ready(ws)
        assert stored(await events_until(ws, 1)) == [event]


# -- the outbox refuses an event that cannot be sent --------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.published: list[OutboxEvent] = []

    async def publish(self, events: Sequence[OutboxEvent]) -> None:
        self.published.extend(events)


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def _org(db: Database) -> int:
    org = await accounts.create_organization(db, "Outbox guard")
    assert org.id is not None
    return org.id


async def _state(db: Database, org_id: int) -> tuple[list[str | None], list[int], int]:
    """(contact names, event ids, the organization's event counter)."""
    async with db.session() as session:
        names = await session.exec(select(Contact.name).where(Contact.organization_id == org_id))
        ids = await session.exec(select(Event.id).where(col(Event.organization_id) == org_id))
        org = await session.get(Organization, org_id)
        assert org is not None
        return sorted(names), sorted(ids), org.last_event_id


def _add_contact(name: str, data: dict[str, Any]):  # type: ignore[no-untyped-def]
    async def work(tx: UnitOfWork) -> str:
        tx.session.add(Contact(organization_id=tx.organization_id, name=name))
        await tx.session.flush()
        tx.emit("contact.created", data)
        return name

    return work


@pytest.mark.parametrize(
    "data",
    [pytest.param(nested(300), id="nested-300"), pytest.param({"x": {1: "int key"}}, id="int-key")],
)
async def test_a_unit_of_work_emitting_an_unsendable_event_commits_nothing(db, data):
    org_id = await _org(db)
    sink = Recorder()
    refused = r"^contact\.created event data cannot be encoded as JSON: "
    with pytest.raises(UnencodableEvent, match=refused):
        async with unit_of_work(db, org_id, sink) as tx:
            await _add_contact("Refused", data)(tx)
    assert await _state(db, org_id) == ([], [], 0)
    assert sink.published == []
    # The next unit of work numbers its event 1 and publishes exactly what it stored.
    async with unit_of_work(db, org_id, sink) as tx:
        await _add_contact("Stored", {"name": "Stored"})(tx)
    assert await _state(db, org_id) == (["Stored"], [1], 1)
    assert [(e.id, e.data) for e in sink.published] == [(1, {"name": "Stored"})]
    async with db.session() as session:
        row = await session.get(Event, (org_id, 1))
        assert row is not None and row.data == {"name": "Stored"}


async def test_in_a_group_commit_only_the_unit_with_the_unsendable_event_fails(db):
    org_id = await _org(db)
    sink = Recorder()
    async with GroupCommit(db, sink) as commits:
        results = await asyncio.gather(
            commits.run(org_id, _add_contact("First", {"n": 1})),
            commits.run(org_id, _add_contact("Poison", nested(300))),
            commits.run(org_id, _add_contact("Last", {"n": 3})),
            return_exceptions=True,
        )
    assert results[0] == "First" and results[2] == "Last"
    assert isinstance(results[1], UnencodableEvent)
    assert await _state(db, org_id) == (["First", "Last"], [1, 2], 2)
    assert sorted(e.data["n"] for e in sink.published) == [1, 3]


# -- a stored event that cannot be sent costs only itself ----------------------------------


async def _store_raw(service: Any, org_id: int, event_type: str, data: str) -> int:
    """Append an event row with ``data`` as its stored JSON text, past every check, the
    way a row written before them (or changed by hand) looks. Answers its id."""
    return await on_loop(service.loop.loop, _insert_raw(service, org_id, event_type, data))


async def _insert_raw(service: Any, org_id: int, event_type: str, data: str) -> int:
    value = "CAST(:data AS jsonb)" if service.dialect == "postgresql" else ":data"
    async with service.db.engine.begin() as connection:
        event_id = (
            await connection.execute(
                text(
                    "UPDATE organizations SET last_event_id = last_event_id + 1 WHERE id = :org"
                    " RETURNING last_event_id"
                ),
                {"org": org_id},
            )
        ).scalar_one()
        await connection.execute(
            text(
                "INSERT INTO events (organization_id, id, type, data, created_at)"
                f" VALUES (:org, :id, :type, {value}, CURRENT_TIMESTAMP)"
            ),
            {"org": org_id, "id": event_id, "type": event_type, "data": data},
        )
    return int(event_id)


BAD_ROWS = {
    "nested-300": '{"a":' * 299 + "{}" + "}" * 299,
    "an-array": "[1, 2, 3]",
    "not-json": "{'single': 'quotes'}",
}


@pytest.mark.parametrize("bad", list(BAD_ROWS))
async def test_a_resume_meets_an_unsendable_row_and_goes_on_past_it(service, tenant, bad):
    if bad == "not-json" and service.dialect == "postgresql":
        # Such a row cannot exist there: the database itself refuses it.
        with pytest.raises(DBAPIError):
            await _store_raw(service, tenant.org_id, "contact.created", BAD_ROWS[bad])
        return
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        first = (await api.post("/api/leads", json={"name": "Before"})).json()
        poisoned = await _store_raw(service, tenant.org_id, "contact.created", BAD_ROWS[bad])
        third = (await api.post("/api/leads", json={"name": "After"})).json()
        assert poisoned == 2
        # Every resume from before it, again and again: the same frames, and the
        # connection serves on.
        for attempt in range(2):
            async with await open_ws(service.url, token, "last_event_id=0") as ws:
                assert (await ready(ws))["last_event_id"] == 0
                frames = _told(await events_until(ws, 3))
                assert [f.get("id") for f in frames] == [1, None, 3]
                assert frames[0]["data"] == first and frames[2]["data"] == third
                assert frames[1] == _unreadable(2, "contact.created")
                assert _told(await drain(ws)) == []
                if attempt:
                    r = await api.post("/api/leads", json={"name": "Live"})
                    (live,) = stored(await frames_until(ws, lambda f: "id" in f))
                    assert (live["id"], live["data"]) == (4, r.json())
        # From right after it, it is not mentioned.
        async with await open_ws(service.url, token, "last_event_id=2") as ws:
            await ready(ws)
            assert [f.get("id") for f in _told(await events_until(ws, 4))] == [3, 4]


async def test_a_client_narrowed_to_other_types_is_not_told(service, tenant):
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        await api.post("/api/leads", json={"name": "One"})
        await _store_raw(service, tenant.org_id, "contact.created", BAD_ROWS["nested-300"])
        await api.post("/api/leads", json={"name": "Three"})
    async with await open_ws(service.url, token, "events=lead.created&last_event_id=0") as ws:
        await ready(ws)
        assert [f.get("id") for f in await events_until(ws, 3)] == [1, 3]


async def test_a_live_client_is_told_in_order_when_the_next_event_shows_the_gap(service, tenant):
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api, await open_ws(service.url, token) as ws:
        await ready(ws)
        await api.post("/api/leads", json={"name": "One"})
        assert ids_of(await events_until(ws, 1)) == [1]
        # Stored without being published: the hub finds it missing when 3 comes, and
        # fetches it from the outbox.
        await _store_raw(service, tenant.org_id, "lead.updated", BAD_ROWS["nested-300"])
        await api.post("/api/leads", json={"name": "Three"})
        frames = _told(await events_until(ws, 3))
        assert [f.get("id") for f in frames] == [None, 3]
        assert frames[0] == _unreadable(2, "lead.updated")
        await api.post("/api/leads", json={"name": "Four"})
        assert ids_of(await events_until(ws, 4)) == [4]
