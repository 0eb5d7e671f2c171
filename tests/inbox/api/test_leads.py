"""Leads: create, read, update, delete, convert, filter, sort and page, per organization."""

from __future__ import annotations

from tests.inbox.platforms import events_of


def test_create_returns_the_lead_and_records_lead_created(service, tenant):
    r = tenant.api.post(
        "/api/leads",
        json={
            "name": "Ada",
            "email": "Ada@Example.com",
            "phone": "+1 415 555 0100",
            "value": 1250.5,
            "source": "website",
        },
    )
    assert r.status_code == 201, r.text
    lead = r.json()
    assert lead["email"] == "ada@example.com"
    assert lead["phone"] == "+14155550100"
    assert lead["status"] == "new"
    assert lead["value"] == 1250.5
    assert lead["created_at"].endswith("Z")
    assert tenant.api.get(f"/api/leads/{lead['id']}").json() == lead
    [event] = events_of(service, tenant.org_id, "lead.created")
    assert event.data == lead


def test_a_lead_needs_a_name_or_an_email(tenant):
    r = tenant.api.post("/api/leads", json={"company": "Acme"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "name or an email" in r.json()["error"]["message"]


def test_invalid_fields_are_named_in_the_error(tenant):
    r = tenant.api.post(
        "/api/leads", json={"name": "X", "email": "not-an-email", "status": "won", "value": -1}
    )
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["error"]["details"]["fields"]}
    assert fields == {"email", "status", "value"}


def test_unknown_fields_are_rejected_not_dropped(tenant):
    r = tenant.api.post("/api/leads", json={"name": "X", "budget": 5})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "budget"


def test_patch_changes_only_the_given_fields_and_records_lead_updated(service, tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Bo", "company": "Acme"}).json()
    r = tenant.api.patch(f"/api/leads/{lead['id']}", json={"status": "qualified"})
    assert r.status_code == 200
    assert r.json()["status"] == "qualified"
    assert r.json()["company"] == "Acme"
    assert r.json()["updated_at"] > lead["updated_at"]
    [event] = events_of(service, tenant.org_id, "lead.updated")
    assert event.data["status"] == "qualified"


def test_patch_cannot_remove_both_name_and_email(tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Bo"}).json()
    r = tenant.api.patch(f"/api/leads/{lead['id']}", json={"name": None})
    assert r.status_code == 422
    assert tenant.api.get(f"/api/leads/{lead['id']}").json()["name"] == "Bo"


def test_put_replaces_the_whole_lead(tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Cy", "company": "Acme"}).json()
    r = tenant.api.put(f"/api/leads/{lead['id']}", json={"email": "cy@example.com"})
    assert r.status_code == 200
    assert r.json()["name"] is None
    assert r.json()["company"] is None
    assert r.json()["email"] == "cy@example.com"


def test_an_unchanged_patch_records_no_event(service, tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Di"}).json()
    tenant.api.patch(f"/api/leads/{lead['id']}", json={"name": "Di"})
    assert events_of(service, tenant.org_id, "lead.updated") == []


def test_delete(service, tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Ed"}).json()
    assert tenant.api.delete(f"/api/leads/{lead['id']}").status_code == 204
    r = tenant.api.get(f"/api/leads/{lead['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert [e.data for e in events_of(service, tenant.org_id, "lead.deleted")] == [
        {"id": lead["id"]}
    ]


def test_convert_makes_a_customer_contact(service, tenant):
    lead = tenant.api.post(
        "/api/leads", json={"name": "Flo", "email": "flo@example.com", "company": "Acme"}
    ).json()
    r = tenant.api.post(f"/api/leads/{lead['id']}/convert")
    assert r.status_code == 200
    converted = r.json()
    assert converted["status"] == "converted"
    assert converted["converted_at"] is not None
    contact = tenant.api.get(f"/api/contacts/{converted['contact_id']}").json()
    assert contact["status"] == "customer"
    assert contact["email"] == "flo@example.com"
    customers = tenant.api.get("/api/customers").json()["data"]
    assert [c["id"] for c in customers] == [contact["id"]]
    types = [e.type for e in events_of(service, tenant.org_id)]
    assert types == ["lead.created", "contact.created", "lead.updated"]


def test_convert_reuses_the_linked_contact(tenant):
    contact = tenant.api.post("/api/contacts", json={"name": "Gus"}).json()
    lead = tenant.api.post("/api/leads", json={"name": "Gus", "contact_id": contact["id"]}).json()
    converted = tenant.api.post(f"/api/leads/{lead['id']}/convert").json()
    assert converted["contact_id"] == contact["id"]
    assert tenant.api.get(f"/api/contacts/{contact['id']}").json()["status"] == "customer"


def test_filters_search_and_sort(tenant):
    for name, status, source, value in [
        ("Alpha Co buyer", "new", "website", 10),
        ("Beta", "qualified", "whatsapp", 30),
        ("Gamma", "qualified", "website", 20),
    ]:
        tenant.api.post(
            "/api/leads", json={"name": name, "status": status, "source": source, "value": value}
        )
    names = lambda r: [x["name"] for x in r.json()["data"]]  # noqa: E731
    assert names(
        tenant.api.get("/api/leads", params={"status": "qualified", "sort": "name", "order": "asc"})
    ) == ["Beta", "Gamma"]
    assert names(
        tenant.api.get("/api/leads", params={"source": "website", "sort": "value", "order": "desc"})
    ) == ["Gamma", "Alpha Co buyer"]
    assert names(tenant.api.get("/api/leads", params={"q": "co b"})) == ["Alpha Co buyer"]
    # LIKE wildcards in the search are taken literally.
    assert names(tenant.api.get("/api/leads", params={"q": "%"})) == []


def test_the_leads_of_one_contact(tenant):
    gus = tenant.api.post("/api/contacts", json={"name": "Gus"}).json()
    tenant.api.post("/api/leads", json={"name": "Gus, first", "contact_id": gus["id"]})
    tenant.api.post("/api/leads", json={"name": "Someone else"})
    found = tenant.api.get("/api/leads", params={"contact_id": gus["id"]}).json()["data"]
    assert [x["name"] for x in found] == ["Gus, first"]
    assert tenant.api.get("/api/leads", params={"contact_id": 0}).status_code == 422


def test_pagination_edges(tenant):
    for i in range(5):
        tenant.api.post("/api/leads", json={"name": f"L{i}"})
    page = tenant.api.get(
        "/api/leads", params={"limit": 2, "offset": 0, "sort": "name", "order": "asc"}
    ).json()
    assert [x["name"] for x in page["data"]] == ["L0", "L1"]
    assert page["pagination"] == {"total": 5, "limit": 2, "offset": 0, "has_more": True}
    last = tenant.api.get("/api/leads", params={"limit": 2, "offset": 4}).json()
    assert len(last["data"]) == 1
    assert last["pagination"]["has_more"] is False
    beyond = tenant.api.get("/api/leads", params={"offset": 50}).json()
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 5
    assert tenant.api.get("/api/leads").json()["pagination"]["limit"] == 50
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "x"}):
        r = tenant.api.get("/api/leads", params=bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["details"]["fields"][0]["field"] in ("limit", "offset")


def test_a_contact_of_another_organization_cannot_be_linked(tenant, other_tenant):
    foreign = other_tenant.api.post("/api/contacts", json={"name": "Theirs"}).json()
    r = tenant.api.post("/api/leads", json={"name": "Mine", "contact_id": foreign["id"]})
    assert r.status_code == 404


def test_a_null_status_in_a_patch_leaves_the_status_as_is(tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Hal", "status": "contacted"}).json()
    r = tenant.api.patch(f"/api/leads/{lead['id']}", json={"status": None, "company": "Acme"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "contacted"
    assert r.json()["company"] == "Acme"
