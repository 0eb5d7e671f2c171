"""Free-form JSON the API stores (custom fields, channel settings) is bounded: at most 16
levels deep, 64 KiB as JSON, keys of 256 characters. Past a bound: a 422 naming the field,
and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from inbox.models import Event


def nested(levels: int) -> dict[str, Any]:
    """An object ``levels`` objects deep, itself included."""
    value: dict[str, Any] = {"leaf": True}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def field_error(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    (field,) = error["details"]["fields"]
    assert error["message"] == f"{field['field']}: {field['message']}"
    return dict(field)


def event_count(service: Any, org_id: int) -> int:
    async def count() -> int:
        async with service.db.session() as session:
            rows = await session.exec(select(Event).where(col(Event.organization_id) == org_id))
            return len(list(rows))

    return int(service.run(count()))


def contacts_total(tenant: Any) -> int:
    return int(tenant.api.get("/api/contacts").json()["pagination"]["total"])


@pytest.mark.parametrize("levels", [17, 252, 300])
def test_custom_fields_nested_too_deep_are_refused_and_nothing_is_stored(
    service, tenant, levels
):
    r = tenant.api.post("/api/contacts", json={"name": "Deep", "custom_fields": nested(levels)})
    assert field_error(r) == {
        "field": "custom_fields", "message": "nested deeper than 16 levels",
        "type": "json_too_deep",
    }
    assert contacts_total(tenant) == 0
    assert event_count(service, tenant.org_id) == 0


def test_custom_fields_sixteen_levels_deep_are_stored_as_sent(service, tenant):
    custom = {"plan": "gold", "deep": nested(15)}
    r = tenant.api.post("/api/contacts", json={"name": "Deep", "custom_fields": custom})
    assert r.status_code == 201, r.text
    assert r.json()["custom_fields"] == custom
    assert tenant.api.get(f"/api/contacts/{r.json()['id']}").json()["custom_fields"] == custom
    assert event_count(service, tenant.org_id) == 1
    # Arrays count as levels too.
    arrays: Any = [1]
    for _ in range(15):
        arrays = [arrays]
    r = tenant.api.post("/api/contacts", json={"name": "Lists", "custom_fields": {"x": arrays}})
    assert field_error(r)["message"] == "nested deeper than 16 levels"


def test_custom_fields_over_64_kib_are_refused(service, tenant):
    big = {f"k{n}": "x" * 1000 for n in range(66)}
    r = tenant.api.post("/api/contacts", json={"name": "Big", "custom_fields": big})
    assert field_error(r) == {
        "field": "custom_fields", "message": "larger than 64 KiB as JSON", "type": "json_too_large",
    }
    assert contacts_total(tenant) == 0
    fits = {f"k{n}": "x" * 1000 for n in range(60)}
    assert tenant.api.post("/api/contacts",
                           json={"name": "Fits", "custom_fields": fits}).status_code == 201


def test_a_key_over_256_characters_is_refused_at_any_depth(tenant):
    for custom in ({"k" * 257: 1}, {"ok": [{"k" * 257: 1}]}):
        r = tenant.api.post("/api/contacts", json={"name": "Keys", "custom_fields": custom})
        assert field_error(r)["message"] == "has a key longer than 256 characters"
    r = tenant.api.post("/api/contacts", json={"name": "Keys", "custom_fields": {"k" * 256: 1}})
    assert r.status_code == 201, r.text


def test_replacing_or_patching_a_contact_is_bounded_the_same(tenant):
    contact = tenant.api.post("/api/contacts", json={"name": "C", "custom_fields": {"a": 1}})
    contact_id = contact.json()["id"]
    for method in ("PUT", "PATCH"):
        r = tenant.api.request(method, f"/api/contacts/{contact_id}",
                               json={"name": "C", "custom_fields": nested(252)})
        assert field_error(r)["field"] == "custom_fields", method
    assert tenant.api.get(f"/api/contacts/{contact_id}").json()["custom_fields"] == {"a": 1}


def test_channel_settings_are_bounded(tenant):
    r = tenant.api.post("/api/channels",
                        json={"kind": "generic", "name": "Deep", "settings": nested(252)})
    assert field_error(r) == {
        "field": "settings", "message": "nested deeper than 16 levels", "type": "json_too_deep",
    }
    channel = tenant.api.post("/api/channels", json={"kind": "generic", "name": "Plain"})
    assert channel.status_code == 201, channel.text
    r = tenant.api.patch(f"/api/channels/{channel.json()['id']}",
                         json={"settings": {"x": "y" * (65 * 1024)}})
    assert field_error(r)["message"] == "larger than 64 KiB as JSON"
    assert [c["name"] for c in tenant.api.get("/api/channels").json()["data"]] == ["Plain"]


def test_the_bounds_are_documented_on_each_field(service):
    spec = service.client().get("/openapi.json").json()["components"]["schemas"]
    for model, field in [("ContactCreate", "custom_fields"), ("ContactPatch", "custom_fields"),
                         ("ChannelCreate", "settings"), ("ChannelPatch", "settings")]:
        description = str(spec[model]["properties"][field])
        assert "16 levels" in description and "64 KiB" in description, (model, description)
