"""The console's list: views, text search and paging by cursor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from inbox.models import Contact, Message, utcnow
from tests.inbox.api.test_conversations import ids, set_activity


def update(service: Any, model: Any, row_id: int, **values: Any) -> None:
    async def write() -> None:
        async with service.db.session() as session:
            row = await session.get(model, row_id)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)
            await session.commit()

    service.run(write())


def add_message(service: Any, conv: Any, content: str, **values: Any) -> None:
    async def write() -> None:
        async with service.db.session() as session:
            session.add(
                Message(
                    organization_id=conv.organization_id,
                    conversation_id=conv.id,
                    channel_id=conv.channel_id,
                    direction=values.pop("direction", "inbound"),
                    content=content,
                    status=values.pop("status", "received"),
                    **values,
                )
            )
            await session.commit()

    service.run(write())


def listed(api: Any, **params: Any) -> list[int]:
    return ids(api.get("/api/conversations", params=params))


def field_of(response: Any) -> str:
    assert response.status_code == 422, response.text
    return str(response.json()["error"]["details"]["fields"][0]["field"])


# -- views -------------------------------------------------------------------------------


def test_views_mine_unassigned_and_all(service, tenant):
    agent, agent_api = tenant.user("agent")
    mine = tenant.conversation(name="Mine")
    theirs = tenant.conversation(name="Theirs")
    nobody = tenant.conversation(name="Nobody")
    tenant.api.patch(f"/api/conversations/{mine.id}", json={"assignee_id": tenant.owner.id})
    tenant.api.patch(f"/api/conversations/{theirs.id}", json={"assignee_id": agent.id})

    assert set(listed(tenant.api, view="mine")) == {mine.id}
    assert set(listed(agent_api, view="mine")) == {theirs.id}
    assert set(listed(tenant.api, view="unassigned")) == {nobody.id}
    assert set(listed(tenant.api, view="all")) == {mine.id, theirs.id, nobody.id}
    # The older spelling says the same, and agreeing with the view is no conflict.
    assert listed(tenant.api, assignee="me") == listed(tenant.api, view="mine")
    assert listed(tenant.api, view="mine", assignee="me") == [mine.id]

    assert field_of(tenant.api.get("/api/conversations", params={"view": "team"})) == "view"
    conflict = tenant.api.get("/api/conversations", params={"view": "mine", "assignee": "none"})
    assert field_of(conflict) in ("view", "assignee")
    key_api = service.client(tenant.api_key())
    assert field_of(key_api.get("/api/conversations", params={"view": "mine"})) == "view"
    assert set(listed(key_api, view="unassigned")) == {nobody.id}


def test_snoozed_is_a_status_of_its_own(service, tenant):
    snoozed = tenant.conversation(name="Later")
    open_ = tenant.conversation(name="Now")
    until = (utcnow() + timedelta(hours=2)).isoformat()
    r = tenant.api.patch(
        f"/api/conversations/{snoozed.id}", json={"status": "snoozed", "snoozed_until": until}
    )
    assert r.status_code == 200, r.text

    assert listed(tenant.api, status="snoozed") == [snoozed.id]
    assert listed(tenant.api, status="open") == [open_.id]
    [row] = tenant.api.get("/api/conversations", params={"status": "snoozed"}).json()["data"]
    assert row["snoozed_until"] == r.json()["snoozed_until"]


# -- search ------------------------------------------------------------------------------


def test_search_finds_contact_name_phone_email_and_message_text(service, tenant, other_tenant):
    ana = tenant.conversation(name="Ana Souza")
    bo = tenant.conversation(name="Bo Chen")
    cy = tenant.conversation(name="Cy Twombly")
    update(service, Contact, bo.contact_id, email="bo.chen@Example.org", phone="+14155550199")
    add_message(service, cy, "Where is my ORDER #4471?")
    elsewhere = other_tenant.conversation(name="Ana Elsewhere")
    add_message(service, elsewhere, "order #4471 too")

    assert listed(tenant.api, q="ana") == [ana.id]
    assert listed(tenant.api, q="SOUZA") == [ana.id]
    assert listed(tenant.api, q="example.ORG") == [bo.id]
    assert listed(tenant.api, q="5550199") == [bo.id]
    assert listed(tenant.api, q="+1 (415) 555-0199") == [bo.id]
    assert listed(tenant.api, q="order #4471") == [cy.id]
    assert listed(tenant.api, q="nobody writes this") == []
    assert listed(tenant.api, q="  ") == listed(tenant.api)
    # Combined with the other filters, as the console's list is.
    assert listed(tenant.api, q="ana", view="unassigned", status="open") == [ana.id]
    assert listed(tenant.api, q="ana", status="closed") == []
    page = tenant.api.get("/api/conversations", params={"q": "o"}).json()
    assert page["pagination"]["total"] == len(page["data"]) == 3


def test_search_text_is_literal_not_a_pattern(service, tenant):
    percent = tenant.conversation(name="Plain")
    other = tenant.conversation(name="Other")
    add_message(service, percent, "we give 100% refunds_always")
    add_message(service, other, "a 1000 refunds thing")

    assert listed(tenant.api, q="100%") == [percent.id]
    assert listed(tenant.api, q="%") == [percent.id]
    assert listed(tenant.api, q="s_a") == [percent.id]
    assert listed(tenant.api, q="\\") == []


def test_search_text_is_bounded(tenant):
    tenant.conversation()
    assert field_of(tenant.api.get("/api/conversations", params={"q": "x" * 201})) == "q"
    assert tenant.api.get("/api/conversations", params={"q": "x" * 200}).status_code == 200


# -- paging by cursor ---------------------------------------------------------------------


def walk(api: Any, **params: Any) -> tuple[list[int], list[dict[str, Any]]]:
    seen: list[int] = []
    pages = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = api.get("/api/conversations", params=query)
        assert r.status_code == 200, r.text
        pages.append(r.json()["pagination"])
        seen += [c["id"] for c in r.json()["data"]]
        cursor = r.json()["pagination"]["next_cursor"]
        if cursor is None:
            assert r.json()["pagination"]["has_more"] is False
            return seen, pages
        assert r.json()["pagination"]["has_more"] is True


def test_cursor_pages_newest_activity_first_through_ties_and_no_activity(service, tenant):
    convs = [tenant.conversation(name=f"C{i}") for i in range(11)]
    now = utcnow()
    # Three at the very same moment, two without any activity, the rest apart.
    for i, conv in enumerate(convs):
        at = None if i in (4, 9) else now if i in (1, 5, 7) else now - timedelta(minutes=i)
        set_activity(service, conv.id, at)

    everything = listed(tenant.api, limit=200)
    seen, pages = walk(tenant.api, limit=3)

    assert seen == everything
    assert sorted(seen) == sorted(c.id for c in convs)
    assert everything[:3] == sorted([convs[1].id, convs[5].id, convs[7].id], reverse=True)
    assert everything[-2:] == [convs[9].id, convs[4].id]
    assert len(pages) == 4 and all(p["total"] == 11 for p in pages)


def test_cursor_page_starts_after_the_last_row_shown_when_rows_move(service, tenant):
    convs = [tenant.conversation(name=f"M{i}") for i in range(6)]
    now = utcnow()
    for i, conv in enumerate(convs):
        set_activity(service, conv.id, now - timedelta(minutes=i))
    first = tenant.api.get("/api/conversations", params={"limit": 2}).json()
    assert [c["id"] for c in first["data"]] == [convs[0].id, convs[1].id]

    # A new message moves a row from the next page to the top meanwhile.
    set_activity(service, convs[3].id, now + timedelta(minutes=1))
    r = tenant.api.get(
        "/api/conversations", params={"limit": 2, "cursor": first["pagination"]["next_cursor"]}
    )
    assert ids(r) == [convs[2].id, convs[4].id]


def test_cursor_follows_the_filters(service, tenant):
    convs = [tenant.conversation(name=f"Filtered {i}") for i in range(5)]
    tenant.conversation(name="Someone else")
    seen, _ = walk(tenant.api, q="filtered", limit=2)
    assert sorted(seen) == sorted(c.id for c in convs)


def test_a_bad_cursor_is_refused_by_name(tenant):
    tenant.conversation()
    for bad in ("nonsense", "W10", "WyJ4IiwgMV0", "WzEsIDJd", "WyIyMDI2LTAxLTAxIiwgMV0", "x" * 201):
        assert field_of(tenant.api.get("/api/conversations", params={"cursor": bad})) == "cursor"
    tenant.conversation()
    cursor = tenant.api.get("/api/conversations", params={"limit": 1}).json()["pagination"][
        "next_cursor"
    ]
    assert cursor is not None
    r = tenant.api.get("/api/conversations", params={"cursor": cursor, "offset": 5})
    assert field_of(r) == "offset"


def test_offset_paging_still_works(service, tenant):
    convs = [tenant.conversation(name=f"O{i}") for i in range(5)]
    now = utcnow()
    for i, conv in enumerate(convs):
        set_activity(service, conv.id, now - timedelta(minutes=i))
    r = tenant.api.get("/api/conversations", params={"limit": 2, "offset": 2})
    assert ids(r) == [convs[2].id, convs[3].id]
    assert r.json()["pagination"]["has_more"] is True
    assert r.json()["pagination"]["offset"] == 2
    last = tenant.api.get("/api/conversations", params={"limit": 2, "offset": 4}).json()
    assert [c["id"] for c in last["data"]] == [convs[4].id]
    assert last["pagination"]["has_more"] is False and last["pagination"]["next_cursor"] is None
