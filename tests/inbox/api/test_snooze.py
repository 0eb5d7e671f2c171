"""Snooze: a conversation put aside until a time reopens by itself then, or when the
customer writes, and every console sees it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col

from inbox.models import Conversation, utcnow
from inbox.services.outbox import NullSink
from inbox.services.snooze import SnoozeWaker
from tests.inbox.api.test_conversation_views import field_of, update
from tests.inbox.live.wsclient import frames_until, of_type, open_ws, ready
from tests.inbox.platforms import (
    events_of,
    post_meta,
    rows,
    wait_for,
    whatsapp_channel,
    whatsapp_text,
)

TOMORROW = (utcnow() + timedelta(days=1)).isoformat()


def snooze(tenant: Any, conversation_id: int, until: datetime | str) -> Any:
    at = until if isinstance(until, str) else until.isoformat()
    return tenant.api.patch(
        f"/api/conversations/{conversation_id}", json={"status": "snoozed", "snoozed_until": at}
    )


def updates(service: Any, tenant: Any, conversation_id: int) -> list[dict[str, Any]]:
    return [
        e.data
        for e in events_of(service, tenant.org_id, "conversation.updated")
        if e.data["id"] == conversation_id
    ]


def test_snooze_until_a_time_is_shown_and_told(service, tenant):
    conv = tenant.conversation()
    until = utcnow() + timedelta(hours=3)

    r = snooze(tenant, conv.id, until)

    assert r.status_code == 200, r.text
    snoozed = r.json()
    assert snoozed["status"] == "snoozed"
    assert datetime.fromisoformat(snoozed["snoozed_until"]) == until
    assert updates(service, tenant, conv.id) == [snoozed]
    assert tenant.api.get(f"/api/conversations/{conv.id}").json() == snoozed


def test_another_status_ends_the_snooze(service, tenant):
    conv = tenant.conversation()
    snooze(tenant, conv.id, utcnow() + timedelta(hours=3)).raise_for_status()

    r = tenant.api.patch(f"/api/conversations/{conv.id}", json={"status": "pending"})

    assert (r.json()["status"], r.json()["snoozed_until"]) == ("pending", None)
    [stored] = rows(service, Conversation, col(Conversation.id) == conv.id)
    assert stored.snoozed_until is None
    assert updates(service, tenant, conv.id)[-1] == r.json()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"status": "snoozed"}, "needs the time"),
        ({"status": "snoozed", "snoozed_until": None}, "needs the time"),
        ({"status": "snoozed", "snoozed_until": "2020-01-01T00:00:00Z"}, "in the future"),
        ({"status": "snoozed", "snoozed_until": "in a while"}, "datetime"),
        ({"status": "open", "snoozed_until": TOMORROW}, "only with status"),
    ],
)
def test_a_snooze_needs_a_time_in_the_future(service, tenant, body, says):
    conv = tenant.conversation()
    r = tenant.api.patch(f"/api/conversations/{conv.id}", json=body)
    assert field_of(r) == "snoozed_until"
    assert says in r.json()["error"]["message"]
    assert tenant.api.get(f"/api/conversations/{conv.id}").json()["status"] == "open"
    assert updates(service, tenant, conv.id) == []


def test_a_snooze_is_at_most_a_year_and_has_a_time_zone(tenant):
    conv = tenant.conversation()
    later = utcnow() + timedelta(days=400)
    assert "within a year" in snooze(tenant, conv.id, later).json()["error"]["message"]
    naive = (utcnow() + timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert "time zone" in snooze(tenant, conv.id, naive).json()["error"]["message"]
    without_status = tenant.api.patch(
        f"/api/conversations/{conv.id}",
        json={"snoozed_until": (utcnow() + timedelta(days=1)).isoformat()},
    )
    assert field_of(without_status) == "snoozed_until"
    # Any zone is a moment: stored and shown in UTC.
    in_lisbon_summer = (utcnow() + timedelta(days=2)).astimezone(UTC).replace(microsecond=0)
    r = snooze(tenant, conv.id, in_lisbon_summer.isoformat().replace("+00:00", "Z"))
    assert r.status_code == 200, r.text
    assert r.json()["snoozed_until"] == in_lisbon_summer.isoformat().replace("+00:00", "Z")


def test_another_organizations_conversation_is_not_found(tenant, other_tenant):
    conv = other_tenant.conversation()
    r = snooze(tenant, conv.id, utcnow() + timedelta(hours=1))
    assert r.status_code == 404


def test_the_conversation_reopens_by_itself_when_the_time_comes(service, tenant):
    conv = tenant.conversation()
    r = snooze(tenant, conv.id, utcnow() + timedelta(seconds=1))
    assert r.status_code == 200, r.text

    reopened = wait_for(
        lambda: [u for u in updates(service, tenant, conv.id) if u["status"] == "open"],
        what="the snoozed conversation to reopen",
    )

    assert [(u["status"], u["snoozed_until"]) for u in reopened] == [("open", None)]
    shown = tenant.api.get(f"/api/conversations/{conv.id}").json()
    assert shown == reopened[0]
    assert tenant.api.get("/api/conversations", params={"status": "snoozed"}).json()["data"] == []


def test_several_processes_reopen_a_due_conversation_once(service, tenant):
    convs = [tenant.conversation() for _ in range(3)]
    for conv in convs:
        snooze(tenant, conv.id, utcnow() + timedelta(hours=1)).raise_for_status()
        # Its time came while no process was looking.
        update(service, Conversation, conv.id, snoozed_until=utcnow() - timedelta(minutes=1))
    wakers = [SnoozeWaker(service.db, NullSink()) for _ in range(3)]

    async def all_at_once() -> list[int]:
        return list(await asyncio.gather(*(w.reopen_due() for w in wakers)))

    service.run(all_at_once())

    for conv in convs:
        told = [u["status"] for u in updates(service, tenant, conv.id)]
        assert told == ["snoozed", "open"]
        [stored] = rows(service, Conversation, col(Conversation.id) == conv.id)
        assert (stored.status, stored.snoozed_until) == ("open", None)


def test_a_message_from_the_customer_reopens_a_snoozed_conversation(service, tenant):
    channel = whatsapp_channel(tenant)
    first = whatsapp_text(channel, "wamid.snooze-1", "Hello?")
    assert post_meta(service, "whatsapp", first, channel.secret).status_code == 200
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert conv.id is not None
    snooze(tenant, conv.id, utcnow() + timedelta(days=1)).raise_for_status()

    again = whatsapp_text(channel, "wamid.snooze-2", "Anyone there?", timestamp=1749417000)
    assert post_meta(service, "whatsapp", again, channel.secret).status_code == 200

    # The same conversation, open again, with nothing left of the snooze to show.
    [same] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert (same.id, same.status, same.snoozed_until) == (conv.id, "open", None)
    latest = updates(service, tenant, conv.id)[-1]
    assert (latest["status"], latest["snoozed_until"], latest["unread_count"]) == ("open", None, 2)
    assert tenant.api.get(f"/api/conversations/{conv.id}").json()["snoozed_until"] is None


async def test_every_console_sees_the_snooze_and_the_reopening(service, tenant):
    conv = tenant.conversation()
    async with await open_ws(service.url, service.token_for(tenant.owner)) as console:
        await ready(console)
        r = snooze(tenant, conv.id, utcnow() + timedelta(seconds=1))
        assert r.status_code == 200, r.text

        frames = await frames_until(
            console,
            lambda f: f["type"] == "conversation.updated" and f["data"]["status"] == "open",
        )

    told = [f["data"] for f in of_type(frames, "conversation.updated")]
    assert [(d["id"], d["status"]) for d in told] == [(conv.id, "snoozed"), (conv.id, "open")]
    assert told[0] == r.json()
    assert told[1]["snoozed_until"] is None
