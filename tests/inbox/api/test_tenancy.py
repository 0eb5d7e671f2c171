"""Tenant isolation: another organization's ids are "not found" and its rows never show.

Organization A owns one of everything. Organization B's owner — allowed every endpoint —
tries each verb on A's ids: every answer matches the one for an id that does not exist,
and afterwards A's rows, and both event logs, are exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import func, select

from inbox.models import Event

MISSING_IDS = (2_000_000_000, 2**31, 10**20)  # unused; past 32 bits; past 64 bits


@dataclass
class Owned:
    """One of every resource of an organization."""

    lead: int
    linked_lead: int
    contact: int
    conversation: int
    conversation_contact: int
    conversation_channel: int
    channel: int
    user: int
    api_key: int
    key: str


def populate(tenant: Any, label: str) -> Owned:
    api = tenant.api
    contact = api.post("/api/contacts", json={"name": f"{label} contact",
                                              "email": f"{label.lower()}@contact.example"})
    assert contact.status_code == 201, contact.text
    contact_id = contact.json()["id"]
    lead = api.post("/api/leads", json={"name": f"{label} lead", "source": "website"}).json()
    linked = api.post("/api/leads", json={"name": f"{label} linked lead",
                                          "contact_id": contact_id}).json()
    conv = tenant.conversation(messages=2, name=f"{label} sender")
    user, _ = tenant.user("agent")
    channel = api.post("/api/channels", json={"kind": "generic", "name": f"{label} form"}).json()
    key = api.post("/api/api-keys", json={"name": f"{label} key"}).json()
    return Owned(
        lead=lead["id"], linked_lead=linked["id"], contact=contact_id, conversation=conv.id,
        conversation_contact=conv.contact_id, conversation_channel=conv.channel_id,
        channel=channel["id"], user=user.id, api_key=key["id"], key=key["key"],
    )


def snapshot(tenant: Any, owned: Owned) -> dict[str, Any]:
    """Everything the organization can see of its own rows."""
    api = tenant.api
    paths = [
        f"/api/leads/{owned.lead}",
        f"/api/leads/{owned.linked_lead}",
        f"/api/contacts/{owned.contact}",
        f"/api/contacts/{owned.conversation_contact}",
        f"/api/conversations/{owned.conversation}",
        f"/api/conversations/{owned.conversation}/messages",
        f"/api/channels/{owned.channel}",
        f"/api/channels/{owned.conversation_channel}",
        f"/api/users/{owned.user}",
        "/api/api-keys",
        "/api/organization",
    ]
    seen = {}
    for path in paths:
        r = api.get(path)
        assert r.status_code == 200, (path, r.text)
        seen[path] = r.json()
    return seen


def event_count(service: Any, org_id: int) -> int:
    async def load() -> int:
        async with service.db.session() as session:
            stmt = select(func.count()).where(Event.organization_id == org_id)
            return int((await session.exec(stmt)).one())

    return service.run(load())


def calls(owned: Owned) -> list[tuple[str, str, int, dict[str, Any] | None]]:
    """(method, path with {id}, A's id, a valid body) for every verb that takes an id."""
    return [
        ("GET", "/api/leads/{id}", owned.lead, None),
        ("PUT", "/api/leads/{id}", owned.lead, {"name": "Taken over"}),
        ("PATCH", "/api/leads/{id}", owned.lead, {"status": "lost"}),
        ("DELETE", "/api/leads/{id}", owned.lead, None),
        ("POST", "/api/leads/{id}/convert", owned.lead, None),
        ("POST", "/api/leads/{id}/convert", owned.linked_lead, None),
        ("GET", "/api/contacts/{id}", owned.contact, None),
        ("PUT", "/api/contacts/{id}", owned.contact, {"name": "Taken over"}),
        ("PATCH", "/api/contacts/{id}", owned.contact, {"status": "archived"}),
        ("DELETE", "/api/contacts/{id}", owned.contact, None),
        ("DELETE", "/api/contacts/{id}", owned.conversation_contact, None),
        ("GET", "/api/conversations/{id}", owned.conversation, None),
        ("PATCH", "/api/conversations/{id}", owned.conversation, {"status": "closed"}),
        ("POST", "/api/conversations/{id}/read", owned.conversation, None),
        ("GET", "/api/conversations/{id}/messages", owned.conversation, None),
        ("POST", "/api/conversations/{id}/messages", owned.conversation,
         {"content": "written by another organization"}),
        ("POST", "/api/conversations/{id}/messages", owned.conversation,
         {"content": "a note by another organization", "private": True}),
        ("GET", "/api/channels/{id}", owned.channel, None),
        ("PATCH", "/api/channels/{id}", owned.channel, {"name": "Taken over",
                                                        "is_active": False}),
        ("DELETE", "/api/channels/{id}", owned.channel, None),
        ("DELETE", "/api/channels/{id}", owned.conversation_channel, None),
        ("GET", "/api/users/{id}", owned.user, None),
        ("PATCH", "/api/users/{id}", owned.user, {"role": "admin", "password": "new-password"}),
        ("POST", "/api/users/{id}/deactivate", owned.user, None),
        ("DELETE", "/api/api-keys/{id}", owned.api_key, None),
    ]


def error_code(r: Any) -> str:
    return r.json()["error"]["code"]


def leaks(text: str, label: str) -> bool:
    """Whether a response shows any of the rows ``populate`` made for ``label``."""
    names = ("contact", "lead", "linked lead", "sender", "form", "key")
    return any(f"{label} {name}" in text for name in names) or (
        f"{label.lower()}@contact.example" in text
    )


def test_another_organizations_ids_are_not_found_and_nothing_changes(
    service, tenant, other_tenant
):
    owned = populate(tenant, "A")
    before = snapshot(tenant, owned)
    events_a = event_count(service, tenant.org_id)
    events_b = event_count(service, other_tenant.org_id)

    for method, path, own_id, body in calls(owned):
        foreign = other_tenant.api.request(method, path.format(id=own_id), json=body)
        where = f"{method} {path} with A's id"
        assert foreign.status_code == 404, (where, foreign.text)
        assert error_code(foreign) == "RESOURCE_NOT_FOUND", where
        assert not leaks(foreign.text, "A"), where
        for missing in MISSING_IDS:
            absent = other_tenant.api.request(method, path.format(id=missing), json=body)
            assert (absent.status_code, error_code(absent)) == (404, "RESOURCE_NOT_FOUND"), (
                method, path, missing, absent.text,
            )
            assert set(absent.json()) == set(foreign.json()) == {"error"}

    assert snapshot(tenant, owned) == before
    assert event_count(service, tenant.org_id) == events_a
    assert event_count(service, other_tenant.org_id) == events_b
    # A's key was not revoked, and B gained nothing (converting made no contact in B).
    assert service.client(owned.key).get("/api/leads").status_code == 200
    assert other_tenant.api.get("/api/contacts").json()["pagination"]["total"] == 0


def test_references_to_another_organizations_rows_are_refused_like_missing_ones(
    tenant, other_tenant
):
    mine = populate(tenant, "A")
    theirs = populate(other_tenant, "B")
    before = snapshot(tenant, mine)

    def same_as_missing(method: str, path: str, field: str, foreign_id: int,
                        status: int, **body: Any) -> None:
        foreign = tenant.api.request(method, path, json={**body, field: foreign_id})
        absent = tenant.api.request(method, path, json={**body, field: MISSING_IDS[0]})
        assert foreign.status_code == status, foreign.text
        assert (foreign.status_code, error_code(foreign)) == (absent.status_code,
                                                              error_code(absent))
        assert not leaks(foreign.text, "B")

    same_as_missing("POST", "/api/leads", "contact_id", theirs.contact, 404, name="New")
    same_as_missing("PATCH", f"/api/leads/{mine.lead}", "contact_id", theirs.contact, 404)
    same_as_missing("PUT", f"/api/leads/{mine.lead}", "contact_id", theirs.contact, 404,
                    name="Replaced")
    same_as_missing("PATCH", f"/api/conversations/{mine.conversation}", "assignee_id",
                    theirs.user, 422)
    assert snapshot(tenant, mine) == before
    assert ids_in(tenant.api, "/api/leads") == {mine.lead, mine.linked_lead}


LISTS = ["/api/leads", "/api/contacts", "/api/customers", "/api/conversations",
         "/api/channels", "/api/users", "/api/api-keys"]


def ids_in(client: Any, path: str, **params: Any) -> set[int]:
    r = client.get(path, params=params)
    assert r.status_code == 200, (path, r.text)
    page = r.json()
    assert page["pagination"]["total"] == len(page["data"])
    return {row["id"] for row in page["data"]}


def test_lists_never_include_another_organizations_rows(tenant, other_tenant):
    owned = populate(tenant, "A")
    converted = tenant.api.post(f"/api/leads/{owned.linked_lead}/convert")
    assert converted.status_code == 200
    populate(other_tenant, "B")

    for path in LISTS:
        a_ids = ids_in(tenant.api, path)
        b_ids = ids_in(other_tenant.api, path)
        assert a_ids, path  # A does see its own rows here...
        assert a_ids.isdisjoint(b_ids), path  # ...and B sees none of them.
    assert other_tenant.api.get("/api/customers").json()["data"] == []
    # Filters naming A's rows find nothing for B.
    for path, params in [
        ("/api/conversations", {"channel_id": owned.conversation_channel}),
        ("/api/conversations", {"contact_id": owned.conversation_contact}),
        ("/api/conversations", {"assignee_id": owned.user}),
        ("/api/leads", {"q": "A lead"}),
        ("/api/contacts", {"search": "A contact"}),
        ("/api/contacts", {"search": "a@contact.example"}),
    ]:
        assert ids_in(other_tenant.api, path, **params) == set(), (path, params)
    for path in LISTS:
        assert not leaks(other_tenant.api.get(path).text, "A"), path


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_an_api_key_sees_nothing_of_another_organization(service, tenant, other_tenant, role):
    theirs = populate(other_tenant, "B")
    key = service.client(tenant.api_key(role))
    assert key.get("/api/auth/me").json()["organization"]["id"] == tenant.org_id

    readable = [
        f"/api/leads/{theirs.lead}",
        f"/api/contacts/{theirs.contact}",
        f"/api/conversations/{theirs.conversation}",
        f"/api/conversations/{theirs.conversation}/messages",
    ]
    if role == "admin":
        readable += [f"/api/channels/{theirs.channel}", f"/api/users/{theirs.user}"]
    for path in readable:
        r = key.get(path)
        assert (r.status_code, error_code(r)) == (404, "RESOURCE_NOT_FOUND"), path
    r = key.patch(f"/api/leads/{theirs.lead}", json={"status": "lost"})
    assert r.status_code == 404
    assert other_tenant.api.get(f"/api/leads/{theirs.lead}").json()["status"] == "new"

    lists = LISTS if role == "admin" else LISTS[:4]
    for path in lists:
        assert ids_in(key, path).isdisjoint(ids_in(other_tenant.api, path)), path
        assert not leaks(key.get(path).text, "B"), path
    assert ids_in(key, "/api/leads") == set()
