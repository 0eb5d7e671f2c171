"""Replaying a recorded webhook is idempotent: what was stored once is never stored twice,
even for requests that carry no id of their own (a lead, a generic message without an
`external_id`), and the lead form's key is not kept to make that replay possible."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

from sqlmodel import col

from inbox.models import Lead, Message, WebhookRecord
from tests.inbox.platforms import rows
from tests.inbox.web.test_webhook_archive import records_with


def form_key(tenant: Any) -> str:
    r = tenant.api.post("/api/organization/lead-form-key")
    assert r.status_code == 200, r.text
    return str(r.json()["lead_form_key"])


def leads_named(service: Any, tenant: Any, name: str) -> list[Lead]:
    return [lead for lead in rows(service, Lead, col(Lead.organization_id) == tenant.org_id)
            if lead.name == name]


def test_a_stored_lead_is_not_replayed_and_its_form_key_is_not_kept(service, tenant):
    key = form_key(tenant)
    name = f"Dana {uuid4().hex[:8]}"
    by_query = service.client().post("/webhooks/leads/incoming",
                                      params={"key": key, "utm": "spring"}, json={"name": name})
    by_header = service.client().post("/webhooks/leads/incoming", headers={"X-Form-Key": key},
                                       json={"name": name, "company": "Acme"})
    assert (by_query.status_code, by_header.status_code) == (201, 201)

    records = records_with(service, name, 2)
    for record in records:
        assert key not in record.url
        assert all(key not in value for _, value in record.headers)
        assert "x-form-key" not in {n.lower() for n, _ in record.headers}
        assert (record.outcome, record.organization_id) == ("stored", tenant.org_id)
    assert "utm=spring" in records[0].url

    for record in records:
        refused = tenant.api.post(f"/api/webhook-log/{record.id}/replay")
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "WEBHOOK_NOT_REPLAYABLE"
    assert len(leads_named(service, tenant, name)) == 2


def test_a_lead_that_was_not_stored_is_replayed_once(service, tenant):
    key = form_key(tenant)
    marker = uuid4().hex[:8]
    assert service.client().post("/webhooks/leads/incoming", params={"key": key},
                                 json={"name": f"probe {marker}"}).status_code == 201
    [probe] = records_with(service, f"probe {marker}")
    # As the record of a lead the database could not take: answered 503, nothing stored.
    name = f"Lost {marker}"

    async def record_failure() -> int:
        async with service.db.session() as session:
            record = WebhookRecord(
                organization_id=tenant.org_id, kind="lead_form", method="POST", url=probe.url,
                headers=probe.headers, body=json.dumps({"name": name}).encode(),
                outcome="failed", status=503, error="database unavailable")
            session.add(record)
            await session.commit()
            assert record.id is not None
            return record.id

    record_id = service.run(record_failure())
    first = tenant.api.post(f"/api/webhook-log/{record_id}/replay")
    assert first.status_code == 200, first.text
    assert (first.json()["outcome"], first.json()["status"]) == ("stored", 201)
    [lead] = leads_named(service, tenant, name)

    again = tenant.api.post(f"/api/webhook-log/{record_id}/replay")
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "WEBHOOK_NOT_REPLAYABLE"
    assert [x.id for x in leads_named(service, tenant, name)] == [lead.id]


def test_a_generic_message_without_external_id_is_not_stored_twice(service, tenant):
    key = tenant.api_key(scopes=("ingest",))
    content = f"no id {uuid4().hex}"
    body = {"from": "+15550123456", "content": content, "platform": "whatsapp"}
    r = service.client().post("/webhooks/messages/incoming", json=body, headers={"X-Api-Key": key})
    assert r.status_code == 200 and r.json()["stored"] == 1
    [record] = records_with(service, content)

    refused = tenant.api.post(f"/api/webhook-log/{record.id}/replay")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "WEBHOOK_NOT_REPLAYABLE"
    stored = [m for m in rows(service, Message, col(Message.content) == content)]
    assert len(stored) == 1


def test_a_generic_message_with_its_external_id_replays_as_a_duplicate(service, tenant):
    key = tenant.api_key(scopes=("ingest",))
    content = f"with id {uuid4().hex}"
    body = {"from": "+15550123456", "content": content, "platform": "whatsapp",
            "external_id": f"crm-{uuid4().hex}"}
    r = service.client().post("/webhooks/messages/incoming", json=body, headers={"X-Api-Key": key})
    assert r.status_code == 200 and r.json()["stored"] == 1
    [record] = records_with(service, content)

    replayed = tenant.api.post(f"/api/webhook-log/{record.id}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["outcome"] == "duplicate"
    assert len(rows(service, Message, col(Message.content) == content)) == 1
