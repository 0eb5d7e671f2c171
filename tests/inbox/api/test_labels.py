"""Labels: added and removed by name, so that agents labelling at once lose nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.inbox.api.test_conversation_views import field_of
from tests.inbox.platforms import events_of


def label(api: Any, conversation_id: int, **change: Any) -> Any:
    return api.post(f"/api/conversations/{conversation_id}/labels", json=change)


def updates(service: Any, tenant: Any) -> list[dict[str, Any]]:
    return [e.data for e in events_of(service, tenant.org_id, "conversation.updated")]


def test_labels_are_added_and_removed_and_told_once(service, tenant):
    conv = tenant.conversation()
    tenant.api.patch(f"/api/conversations/{conv.id}", json={"labels": ["vip", "billing"]})

    r = label(tenant.api, conv.id, add=["refund", "vip", "refund"], remove=["billing"])

    assert r.status_code == 200, r.text
    assert r.json()["labels"] == ["vip", "refund"]
    assert r.json()["id"] == conv.id and r.json()["status"] == "open"
    assert updates(service, tenant)[-1] == r.json()
    assert len(updates(service, tenant)) == 2
    assert tenant.api.get(f"/api/conversations/{conv.id}").json() == r.json()
    assert [c["id"] for c in tenant.api.get(
        "/api/conversations", params={"label": "refund"}
    ).json()["data"]] == [conv.id]


def test_a_change_that_changes_nothing_tells_nothing(service, tenant):
    conv = tenant.conversation()
    label(tenant.api, conv.id, add=["vip"]).raise_for_status()

    for change in ({"add": ["vip"]}, {"remove": ["never-there"]}, {}):
        r = label(tenant.api, conv.id, **change)
        assert r.status_code == 200 and r.json()["labels"] == ["vip"]
    assert len(updates(service, tenant)) == 1


def test_two_agents_labelling_at_once_keep_both_their_labels(service, tenant):
    conv = tenant.conversation()
    _, ana = tenant.user("agent")
    _, bo = tenant.user("agent")

    def add_each(api: Any, prefix: str) -> None:
        for i in range(8):
            label(api, conv.id, add=[f"{prefix}-{i}"]).raise_for_status()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(add_each, [ana, bo], ["ana", "bo"]))

    labels = tenant.api.get(f"/api/conversations/{conv.id}").json()["labels"]
    assert sorted(labels) == sorted([f"ana-{i}" for i in range(8)] + [f"bo-{i}" for i in range(8)])
    assert len(updates(service, tenant)) == 16


def test_labels_are_validated_like_a_patch(service, tenant):
    conv = tenant.conversation()
    label(tenant.api, conv.id, add=[f"l{i}" for i in range(45)]).raise_for_status()

    too_many = label(tenant.api, conv.id, add=[f"m{i}" for i in range(6)])
    assert field_of(too_many) == "add"
    assert "at most 50" in too_many.json()["error"]["message"]
    assert field_of(label(tenant.api, conv.id, add=[f"x{i}" for i in range(51)])) == "add"
    assert field_of(label(tenant.api, conv.id, add=["a,b"])) == "add.0"
    assert field_of(label(tenant.api, conv.id, remove=[""])) == "remove.0"
    assert field_of(label(tenant.api, conv.id, add=["x" * 65])) == "add.0"
    assert field_of(label(tenant.api, conv.id, add=["vip"], remove=["vip"])) == "remove"
    assert field_of(label(tenant.api, conv.id, labels=["vip"])) == "labels"
    # Replacing up to 50 in one change is fine: what counts is the result.
    swap = label(tenant.api, conv.id, add=[f"n{i}" for i in range(5)], remove=["l0", "l1"])
    assert swap.status_code == 200 and len(swap.json()["labels"]) == 48
    assert len(updates(service, tenant)) == 2


def test_another_organizations_conversation_is_not_found(service, tenant, other_tenant):
    conv = other_tenant.conversation()
    r = label(tenant.api, conv.id, add=["mine"])
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert other_tenant.api.get(f"/api/conversations/{conv.id}").json()["labels"] == []
    assert label(tenant.api, 2_000_000_000, add=["x"]).status_code == 404
