"""Query parameters: page/per_page as another way to say offset/limit, and unknown ones refused.

A client written to another CRM's conventions must either get what it asked for or be
told what it got wrong, never page one forever.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

LISTS = ["/api/leads", "/api/contacts", "/api/customers", "/api/conversations",
         "/api/channels", "/api/users", "/api/api-keys"]


def assert_invalid(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    return error  # type: ignore[no-any-return]


def fields_of(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error["details"]["fields"]]


def names(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [x["name"] for x in r.json()["data"]]


@pytest.fixture()
def five_leads(tenant: Any) -> None:
    for i in range(5):
        tenant.api.post("/api/leads", json={"name": f"L{i}"})


BY_NAME = {"sort": "name", "order": "asc"}


def test_page_and_per_page_walk_the_list(tenant, five_leads):
    r = tenant.api.get("/api/leads", params={"page": 2, "per_page": 2, **BY_NAME})
    assert names(r) == ["L2", "L3"]
    assert r.json()["pagination"] == {"total": 5, "limit": 2, "offset": 2, "has_more": True}
    last = tenant.api.get("/api/leads", params={"page": 3, "per_page": 2, **BY_NAME})
    assert names(last) == ["L4"]
    assert last.json()["pagination"]["has_more"] is False
    assert names(tenant.api.get("/api/leads", params={"page": 1, "per_page": 3, **BY_NAME})) == [
        "L0", "L1", "L2"]


def test_page_alone_counts_in_pages_of_the_default_size_or_of_limit(tenant, five_leads):
    r = tenant.api.get("/api/leads", params={"page": 2})
    assert r.json()["data"] == []
    assert r.json()["pagination"] == {"total": 5, "limit": 50, "offset": 50, "has_more": False}
    r = tenant.api.get("/api/leads", params={"page": 2, "limit": 3, **BY_NAME})
    assert names(r) == ["L3", "L4"]
    assert r.json()["pagination"]["offset"] == 3


def test_per_page_alone_is_limit(tenant, five_leads):
    r = tenant.api.get("/api/leads", params={"per_page": 4, "offset": 3, **BY_NAME})
    assert names(r) == ["L3", "L4"]
    assert r.json()["pagination"]["limit"] == 4


def test_every_offset_paged_list_takes_page_and_per_page(tenant):
    # At least two rows in every list, so that page 2 of 1 is a row of its own.
    for n in range(2):
        tenant.conversation()
        tenant.api.post("/api/leads", json={"name": f"Lead {n}"})
        tenant.api.post("/api/contacts", json={"name": f"Customer {n}", "status": "customer"})
        tenant.api.post("/api/api-keys", json={"name": f"key {n}"})
    tenant.user("agent")
    for path in LISTS:
        r = tenant.api.get(path, params={"page": 3, "per_page": 7})
        assert r.status_code == 200, (path, r.text)
        pagination = r.json()["pagination"]
        assert (pagination["limit"], pagination["offset"]) == (7, 14), path
        by_page = [tenant.api.get(path, params={"page": p, "per_page": 1}).json()["data"]
                   for p in (1, 2)]
        by_offset = [tenant.api.get(path, params={"offset": o, "limit": 1}).json()["data"]
                     for o in (0, 1)]
        assert by_page == by_offset, path
        assert len(by_page[1]) == 1 and by_page[0] != by_page[1], path


@pytest.mark.parametrize("value", [0, 201, -1, "x", "", "2.5"])
def test_per_page_has_the_bounds_of_limit(tenant, value):
    error = assert_invalid(tenant.api.get("/api/leads", params={"per_page": value}))
    assert fields_of(error) == ["per_page"]


@pytest.mark.parametrize("value", [0, -1, "x", "", 10**12])
def test_page_counts_from_one(tenant, value):
    error = assert_invalid(tenant.api.get("/api/leads", params={"page": value}))
    assert fields_of(error) == ["page"]


def test_the_largest_page_at_the_largest_size_is_still_an_answer(tenant, five_leads):
    r = tenant.api.get("/api/leads", params={"page": 50_001, "per_page": 200})
    assert r.status_code == 200, r.text
    assert r.json()["pagination"]["offset"] == 10_000_000


def test_an_invalid_alias_and_an_invalid_filter_are_reported_together(tenant):
    error = assert_invalid(tenant.api.get("/api/leads", params={"page": 0, "status": "won"}))
    assert sorted(fields_of(error)) == ["page", "status"]


def test_per_page_and_a_different_limit_are_refused_naming_both(tenant, five_leads):
    error = assert_invalid(tenant.api.get("/api/leads", params={"per_page": 20, "limit": 10}))
    assert fields_of(error) == ["per_page", "limit"]
    assert "give one of them" in error["message"]


def test_page_and_a_different_offset_are_refused_naming_both(tenant, five_leads):
    r = tenant.api.get("/api/leads", params={"page": 2, "per_page": 2, "offset": 3})
    error = assert_invalid(r)
    assert fields_of(error) == ["page", "offset"]
    # page 2 of pages of 2 starts at offset 2.
    assert "offset=2" in error["details"]["fields"][0]["message"]


def test_aliases_that_agree_with_offset_and_limit_are_fine(tenant, five_leads):
    r = tenant.api.get(
        "/api/leads",
        params={"page": 2, "per_page": 2, "offset": 2, "limit": 2, **BY_NAME},
    )
    assert names(r) == ["L2", "L3"]
    r = tenant.api.get("/api/leads", params={"page": 1, "offset": 0, "per_page": 50})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("param", ["search", "skip", "pageSize", "Page", "limit[]"])
def test_an_unknown_parameter_is_refused_naming_it_and_the_accepted_ones(tenant, param):
    tenant.api.post("/api/leads", json={"name": "Ada"})
    error = assert_invalid(tenant.api.get("/api/leads", params={param: "ada"}))
    assert error["details"]["fields"] == [
        {"field": param, "message": error["details"]["fields"][0]["message"],
         "type": "extra_forbidden"}
    ]
    assert param in error["message"]
    accepted = error["details"]["accepted"]
    assert accepted == ["contact_id", "limit", "offset", "order", "page", "per_page", "q",
                        "sort", "source", "status"]
    # The message itself says what to send instead, for a reader of logs.
    assert "q" in error["details"]["fields"][0]["message"].split("accepted: ")[1].split(", ")


def test_every_unknown_parameter_is_named_and_nothing_is_listed(tenant):
    r = tenant.api.get("/api/contacts", params={"skip": 10, "take": 5, "search": "x"})
    error = assert_invalid(r)
    assert fields_of(error) == ["skip", "take"]
    assert "search" in error["details"]["accepted"]


def test_the_cursor_paged_messages_do_not_take_page_numbers(tenant):
    conv = tenant.conversation(messages=3)
    url = f"/api/conversations/{conv.id}/messages"
    for param in ("page", "per_page", "offset"):
        error = assert_invalid(tenant.api.get(url, params={param: 2}))
        assert fields_of(error) == [param]
        assert error["details"]["accepted"] == ["after", "before", "limit"]
    assert len(tenant.api.get(url, params={"limit": 2}).json()["data"]) == 2


def test_endpoints_without_query_parameters_refuse_any(tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Ada"}).json()
    for method, path in (
        ("GET", "/api/auth/me"),
        ("GET", f"/api/leads/{lead['id']}"),
        ("GET", "/api/organization"),
        ("POST", f"/api/leads/{lead['id']}/convert"),
    ):
        error = assert_invalid(tenant.api.request(method, path, params={"expand": "all"}))
        assert fields_of(error) == ["expand"], (method, path)
        assert error["details"]["accepted"] == []
    # Refused before anything is done: the lead was not converted.
    assert tenant.api.get(f"/api/leads/{lead['id']}").json()["status"] == "new"
    r = tenant.api.post("/api/leads", params={"dry_run": "1"}, json={"name": "Bo"})
    assert fields_of(assert_invalid(r)) == ["dry_run"]
    assert [x["name"] for x in tenant.api.get("/api/leads").json()["data"]] == ["Ada"]


def test_credentials_are_checked_before_parameters(service):
    r = service.client().get("/api/leads", params={"search": "x"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"


def test_health_routes_outside_the_api_ignore_query_strings(service):
    # Load balancers and probes add their own; these routes are not API operations.
    assert service.client().get("/livez", params={"probe": "lb-1"}).status_code == 200


def test_the_openapi_document_lists_page_and_per_page_on_offset_paged_lists(service):
    paths = httpx.get(f"{service.url}/openapi.json").json()["paths"]
    for path in LISTS:
        params = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        assert {"limit", "offset", "page", "per_page"} <= set(params), path
        per_page = params["per_page"]["schema"]["anyOf"][0]
        assert (per_page["minimum"], per_page["maximum"]) == (1, 200)
        assert params["page"]["schema"]["anyOf"][0]["minimum"] == 1
        assert "offset" in params["page"]["description"]
    messages = paths["/api/conversations/{conversation_id}/messages"]["get"]["parameters"]
    assert not {"page", "per_page"} & {p["name"] for p in messages}
    # Any operation may answer 422 now: an unknown parameter is refused everywhere.
    for path, item in paths.items():
        if path.startswith("/api/"):
            for method, op in item.items():
                assert "422" in op["responses"], (method, path)
