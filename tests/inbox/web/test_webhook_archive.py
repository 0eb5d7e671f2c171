"""The webhook archive: every request to a `/webhooks/*` route is recorded with what
became of it, read by the organization's admins, and replayed through today's code."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from sqlmodel import col

from inbox.db import Database
from inbox.models import Message, WebhookRecord, utcnow
from inbox.services.webhook_archive import ArchiveWriter
from inbox.web.webhook_replay import ReplayRefused, replay
from tests.inbox.platforms import (
    Connected,
    connect,
    post_meta,
    rows,
    unique_digits,
    wait_for,
    whatsapp_channel,
    whatsapp_text,
)


@pytest.fixture(autouse=True)
def forged_uncapped(service):
    """Other tests forge requests from the same address within the minute: here every
    one is kept, but for the test of the cap itself."""
    archive = service.app.state.inbox.archive
    kept, archive.forged_per_minute = archive.forged_per_minute, 1_000_000
    yield
    archive.forged_per_minute = kept


def records_with(service: Any, marker: str, count: int = 1) -> list[WebhookRecord]:
    """The records whose body holds ``marker``, once ``count`` of them are written."""
    def found() -> list[WebhookRecord]:
        got = [r for r in rows(service, WebhookRecord, col(WebhookRecord.id) > 0)
               if marker.encode() in r.body]
        return got if len(got) >= count else []
    return wait_for(found, what=f"{count} records of {marker}")


def generic(service: Any, key: str | None, text: str, external_id: str | None = None) -> Any:
    body = {"from": "+15550123456", "content": text, "platform": "whatsapp",
            "external_id": external_id or text}
    headers = {"Content-Type": "application/json", "Cookie": "session=secret-cookie"}
    if key is not None:
        headers["X-Api-Key"] = key
    return service.client().post("/webhooks/messages/incoming", content=json.dumps(body),
                                 headers=headers)


def test_every_outcome_is_recorded_without_credentials(service, tenant):
    channel = whatsapp_channel(tenant)
    wamid = f"wamid.{uuid4().hex}"
    body = whatsapp_text(channel, wamid, "archived hello")
    assert post_meta(service, "whatsapp", body, channel.secret).json()["stored"] == 1
    assert post_meta(service, "whatsapp", body, channel.secret).json()["duplicates"] == 1
    assert post_meta(service, "whatsapp", body, "forged-secret").status_code == 401
    broken = f'{{"object": "whatsapp_business_account", "entry": "{wamid}"'.encode()
    assert post_meta(service, "whatsapp", broken, channel.secret).status_code == 400
    key = tenant.api_key(scopes=("ingest",))
    marker = uuid4().hex
    assert generic(service, key, f"generic {marker}").status_code == 200
    assert generic(service, "ik_not-a-key", f"generic {marker}").status_code == 401

    stored, duplicate, forged, malformed = records_with(service, wamid, 4)
    assert [(r.outcome, r.status) for r in (stored, duplicate, forged, malformed)] == [
        ("stored", 200), ("duplicate", 200), ("bad_signature", 401), ("malformed", 400)]
    assert (stored.kind, stored.channel_id, stored.organization_id) == (
        "whatsapp", channel.id, tenant.org_id)
    assert stored.body == body and stored.method == "POST"
    assert stored.url.endswith("/webhooks/whatsapp")
    assert dict(stored.headers)["x-hub-signature-256"].startswith("sha256=")
    # A forged request belongs to no organization: a sender cannot write into its log.
    assert forged.organization_id is None and forged.channel_id is None
    assert malformed.error is not None and "MALFORMED_REQUEST" in malformed.error
    accepted, refused = records_with(service, marker, 2)
    assert (accepted.kind, accepted.outcome, accepted.organization_id) == (
        "generic", "stored", tenant.org_id)
    assert (refused.outcome, refused.organization_id) == ("bad_signature", None)
    for record in (accepted, refused, stored):
        names = {name.lower() for name, _ in record.headers}
        assert not names & {"x-api-key", "authorization", "cookie"}


def test_a_delivery_before_its_channel_is_replayed_once_it_exists(service, tenant):
    number, secret = f"106{unique_digits(9)}", f"wa-secret-{unique_digits(6)}"
    not_yet = Connected(0, "whatsapp", number, {})
    body = whatsapp_text(not_yet, f"wamid.{uuid4().hex}", "too early")
    assert post_meta(service, "whatsapp", body, secret).status_code == 401
    [record] = records_with(service, number)
    assert (record.outcome, record.organization_id) == ("unknown_channel", None)

    channel = connect(tenant, "whatsapp", {"phone_number_id": number, "access_token": "t",
                                           "app_secret": secret, "verify_token": "v"})
    state = service.app.state.inbox
    first = service.run(replay(service.app, state, record))
    again = service.run(replay(service.app, state, record))

    assert (first.outcome, first.status, first.answer["stored"]) == ("stored", 200, 1)
    assert (again.outcome, again.answer["duplicates"]) == ("duplicate", 1)
    [message] = rows(service, Message, col(Message.channel_id) == channel.id)
    assert message.content == "too early"
    replays = rows(service, WebhookRecord, col(WebhookRecord.replay_of) == record.id)
    assert [(r.id, r.outcome, r.organization_id) for r in replays] == [
        (first.record_id, "stored", tenant.org_id), (again.record_id, "duplicate", tenant.org_id)]


def test_a_forged_request_is_never_replayed(service, tenant):
    channel = whatsapp_channel(tenant)
    body = whatsapp_text(channel, f"wamid.{uuid4().hex}", "forged")
    post_meta(service, "whatsapp", body, "not-the-secret")
    [record] = records_with(service, channel.key)

    with pytest.raises(ReplayRefused) as refused:
        service.run(replay(service.app, service.app.state.inbox, record))
    assert refused.value.status == 422 and refused.value.code == "WEBHOOK_NOT_REPLAYABLE"
    assert rows(service, Message, col(Message.channel_id) == channel.id) == []


def test_admins_page_through_their_own_organizations_log(service, tenant, other_tenant):
    key = tenant.api_key(scopes=("ingest",))
    marker = uuid4().hex
    for n in range(3):
        generic(service, key, f"page {n} {marker}")
    records_with(service, marker, 3)

    first = tenant.api.get("/api/webhook-log", params={"limit": 2, "kind": "generic"}).json()
    assert [json.loads(r["body"])["content"] for r in first["data"]] == [
        f"page 2 {marker}", f"page 1 {marker}"]
    assert first["data"][0]["body_encoding"] == "text"
    rest = tenant.api.get("/api/webhook-log",
                          params={"limit": 2, "before": first["next_cursor"]}).json()
    assert [json.loads(r["body"])["content"] for r in rest["data"]] == [f"page 0 {marker}"]
    assert rest["next_cursor"] is None
    assert tenant.api.get("/api/webhook-log", params={"outcome": "duplicate"}).json()["data"] == []
    _agent, agent = tenant.user("agent")
    assert agent.get("/api/webhook-log").status_code == 403
    assert tenant.api.get("/api/webhook-log", params={"outcome": "nope"}).status_code == 422

    # Another organization sees none of it, and cannot replay it.
    assert other_tenant.api.get("/api/webhook-log").json()["data"] == []
    record_id = first["data"][0]["id"]
    assert other_tenant.api.post(f"/api/webhook-log/{record_id}/replay").status_code == 404
    replayed = tenant.api.post(f"/api/webhook-log/{record_id}/replay")
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["outcome"], replayed.json()["replay_of"]) == ("duplicate", record_id)


def test_forged_requests_are_capped_per_address_and_minute(service):
    writer = ArchiveWriter(service.db, days=3, max_bytes=10**9, forged_per_minute=3)
    forged = {"outcome": "bad_signature", "status": 401}
    kept = [writer.put(dict(forged), client="203.0.113.9") for _ in range(5)]
    assert kept == [True, True, True, False, False]
    assert writer.put(dict(forged), client="198.51.100.7")
    assert writer.put({"outcome": "stored", "status": 200}, client="203.0.113.9")


def test_old_records_and_those_past_the_size_cap_are_pruned(service, own_database):
    db = Database(own_database)
    writer = ArchiveWriter(db, days=3, max_bytes=2_500, forged_per_minute=10)

    def row(age_days: float, n: int) -> dict[str, Any]:
        return {"organization_id": None, "channel_id": None, "kind": "sms", "method": "POST",
                "received_at": utcnow() - timedelta(days=age_days), "url": "http://x/",
                "headers": [], "body": b"x" * 1000, "size": 1000, "outcome": "stored",
                "status": 200, "error": None, "replay_of": None, "n": n}

    async def scenario() -> list[int]:
        for n, age in enumerate([4, 2, 1, 0.5, 0]):
            writer.put({k: v for k, v in row(age, n).items() if k != "n"}, client="a")
        ids = await writer.flush()
        await writer.prune()
        async with db.session() as session:
            left = await session.exec(WebhookRecord.__table__.select())  # type: ignore[attr-defined]
            kept = sorted(r.id for r in left)
        await db.dispose()
        return [ids.index(i) for i in kept]

    # The 4-day-old one is past the retention; of the rest, the newest two fit 2,500 bytes.
    assert service.run(scenario()) == [3, 4]
