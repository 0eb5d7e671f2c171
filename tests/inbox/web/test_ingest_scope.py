"""Only an API key made for ingest may post messages as a customer to the generic
webhook; such a key opens nothing else."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col

from inbox.models import Message
from tests.inbox.live.wsclient import refusal
from tests.inbox.platforms import rows

PATH = "/webhooks/messages/incoming"


def message(external_id: str) -> bytes:
    return json.dumps({"from": "+15550123456", "content": "Hello from me", "platform": "sms",
                       "external_id": external_id}).encode()


def stored(service: Any, tenant: Any) -> list[str | None]:
    return [m.external_id for m in rows(service, Message, col(Message.organization_id)
                                        == tenant.org_id)]


def post(service: Any, credential: str, external_id: str) -> Any:
    return service.client().post(PATH, content=message(external_id),
                                 headers={"Authorization": f"Bearer {credential}",
                                          "Content-Type": "application/json"})


def test_user_tokens_and_keys_without_the_ingest_scope_get_403_and_store_nothing(
    service, tenant
):
    agent, _ = tenant.user("agent")
    for credential, words in [
        (service.token_for(agent), "not a user's access token"),
        (service.token_for(tenant.owner), "not a user's access token"),
        (tenant.api_key("agent"), "lacks the ingest scope"),
        (tenant.api_key("admin"), "lacks the ingest scope"),
    ]:
        r = post(service, credential, "forged-1")
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "AUTHORIZATION_FAILED"
        assert words in error["message"]
        assert error["details"] == {"required_scope": "ingest"}
    assert stored(service, tenant) == []


def test_a_key_made_for_ingest_posts_messages(service, tenant):
    r = tenant.api.post("/api/api-keys", json={"name": "CRM", "scopes": ["ingest"]})
    assert r.status_code == 201, r.text
    assert r.json()["scopes"] == ["ingest"]
    ingest = r.json()["key"]
    both = tenant.api.post("/api/api-keys", json={"name": "Both",
                                                  "scopes": ["ingest", "api"]}).json()
    assert both["scopes"] == ["api", "ingest"]

    assert post(service, ingest, "crm-1").status_code == 200
    assert post(service, both["key"], "crm-2").status_code == 200
    assert service.client(both["key"]).get("/api/leads").status_code == 200
    assert sorted(stored(service, tenant)) == ["crm-1", "crm-2"]


async def test_an_ingest_key_opens_neither_the_rest_api_nor_a_socket(service, tenant):
    ingest = tenant.api_key(scopes=("ingest",))
    client = service.client(ingest)
    for r in (client.get("/api/leads"), client.post("/api/realtime/tickets")):
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "AUTHORIZATION_FAILED"
        assert "ingest only" in error["message"]
    status, error = await refusal(service.url, ingest)
    assert (status, error["code"], error["details"]) == (
        403, "AUTHORIZATION_FAILED", {"required_scope": "api"})


def test_scopes_are_named_from_a_known_list(tenant):
    for scopes in ([], ["admin"], "ingest"):
        r = tenant.api.post("/api/api-keys", json={"name": "Bad", "scopes": scopes})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["fields"][0]["field"].startswith("scopes")
    assert tenant.api.get("/api/api-keys").json()["data"] == []
