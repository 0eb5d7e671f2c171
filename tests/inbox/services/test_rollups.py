"""The message rollups: written with the messages, equal to a rebuild from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from inbox.models import AgentRollup, Conversation, Message, MessageRollup
from inbox.services import rollups
from inbox.services.metrics import start_of_day
from tests.inbox.conftest import Service, Tenant
from tests.inbox.platforms import post_meta, rows, wait_for, whatsapp_body, whatsapp_channel


def rollup_rows(service: Service, org_id: int) -> list[tuple[Any, ...]]:
    """Every rollup row of the organization, of both tables."""

    async def load() -> list[tuple[Any, ...]]:
        async with service.db.session() as session:
            channels = await session.exec(
                select(MessageRollup).where(col(MessageRollup.organization_id) == org_id)
            )
            agents = await session.exec(
                select(AgentRollup).where(col(AgentRollup.organization_id) == org_id)
            )
            return [("channel", r.slot, r.channel_id, r.received, r.sent) for r in channels] + [
                ("agent", r.slot, r.user_id, 0, r.sent) for r in agents
            ]

    return sorted(service.run(load()))


def today(tenant: Tenant) -> dict[str, Any]:
    r = tenant.api.get("/api/analytics/overview")
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def test_what_ingest_and_replies_count_equals_the_rebuild(service, tenant, other_tenant):
    agent, agent_api = tenant.user("agent")
    channel = whatsapp_channel(tenant)
    for name in ("text.json", "text.json", "batch.json", "smb_message_echoes.json"):
        # The repeated delivery is a platform's retry: stored, and counted, once.
        r = post_meta(service, "whatsapp", whatsapp_body(channel, name), channel.secret)
        assert r.status_code == 200, r.text
    stored = rows(service, Message, col(Message.channel_id) == channel.id)
    inbound = sum(m.direction == "inbound" for m in stored)
    echoes = sum(m.direction == "outbound" for m in stored)
    assert inbound >= 2 and echoes >= 1
    [conv, *_] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    for body in ({"content": "On it"}, {"content": "a note", "private": True}):
        r = agent_api.post(f"/api/conversations/{conv.id}/messages", json=body)
        assert r.status_code == 201, r.text
    wait_for(
        lambda: rows(service, Conversation, col(Conversation.id) == conv.id)[0].first_response_at,
        timeout=20,
        what="the reply to be sent",
    )
    r = agent_api.patch(f"/api/conversations/{conv.id}", json={"status": "closed"})
    assert r.status_code == 200, r.text

    figures = today(tenant)
    assert figures["messages"] == {"received": inbound, "sent": echoes + 1}
    assert figures["conversations"]["closed"] == 1
    assert figures["resolution_seconds"]["count"] == 1
    assert figures["first_response_seconds"]["count"] == 1
    [me] = [
        a
        for a in tenant.api.get("/api/analytics/agents").json()["data"]
        if a["user_id"] == agent.id
    ]
    assert me["messages_sent"] == 1
    assert me["conversations_closed"] == 0  # closed, but assigned to no one
    assert me["first_response_seconds_median"] is not None

    counted = rollup_rows(service, tenant.org_id)
    neighbours = rollup_rows(service, other_tenant.org_id)
    service.run(rollups.rebuild_all(service.db, tenant.org_id))
    assert rollup_rows(service, tenant.org_id) == counted
    assert rollup_rows(service, other_tenant.org_id) == neighbours
    assert today(tenant)["messages"] == figures["messages"]


def test_reopening_forgets_the_close(service, tenant):
    conv = tenant.conversation()
    for status in ("closed", "open"):
        r = tenant.api.patch(f"/api/conversations/{conv.id}", json={"status": status})
        assert r.status_code == 200, r.text
    assert today(tenant)["conversations"]["closed"] == 0


def test_today_begins_at_midnight_in_the_zone():
    berlin = "Europe/Berlin"
    # 00:30 on Monday in Berlin is still Sunday in UTC.
    monday = datetime(2026, 10, 25, 23, 30, tzinfo=UTC)
    assert start_of_day(monday, berlin) == datetime(2026, 10, 25, 23, tzinfo=UTC)
    assert start_of_day(monday) == datetime(2026, 10, 25, tzinfo=UTC)
    # Sunday began before the clocks went back: 25 hours earlier.
    assert start_of_day(datetime(2026, 10, 25, 22, tzinfo=UTC), berlin) == datetime(
        2026, 10, 24, 22, tzinfo=UTC
    )


def test_live_figures_count_today_in_the_organizations_zone(service, tenant):
    zone = "Pacific/Kiritimati"  # UTC+14: its day seldom matches UTC's
    r = tenant.api.patch("/api/organization", json={"timezone": zone})
    assert r.status_code == 200, r.text
    midnight = start_of_day(datetime.now(UTC), zone)
    assert midnight == datetime.now(ZoneInfo(zone)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    conv = tenant.conversation(messages=2)

    async def move() -> None:
        async with service.db.session() as session:
            stored = await session.exec(
                select(Message)
                .where(col(Message.conversation_id) == conv.id)
                .order_by(col(Message.id))
            )
            for message, when in zip(
                stored.all(), (midnight - timedelta(seconds=1), midnight), strict=True
            ):
                message.created_at = when
                session.add(message)
            await session.commit()

    service.run(move())
    figures = tenant.api.get("/api/analytics/live").json()
    assert figures["messages_today_inbound"] == 1
