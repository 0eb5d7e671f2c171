"""Platforms retry, and retries overlap: the database's unique keys, not luck,
keep every message stored exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlmodel import col

from inbox.models import Contact, Conversation, Lead, Message
from tests.inbox.platforms import events_of, meta_headers, rows, whatsapp_channel, whatsapp_text

MESSAGES = 200
SENDERS = 20
IN_FLIGHT = 40


async def deliver_three_times(
    http: httpx.AsyncClient, gate: asyncio.Semaphore, body: bytes, headers: dict[str, str]
) -> list[int]:
    """Two copies at the same moment, then the platform's later retry."""
    async with gate:
        together = await asyncio.gather(
            http.post("/webhooks/whatsapp", content=body, headers=headers),
            http.post("/webhooks/whatsapp", content=body, headers=headers),
        )
        later = await http.post("/webhooks/whatsapp", content=body, headers=headers)
    return [r.status_code for r in (*together, later)]


async def deliver_all(base_url: str, bodies: list[bytes], secret: str) -> list[int]:
    gate = asyncio.Semaphore(IN_FLIGHT)
    # Idle connections are dropped well before the server's keep-alive timeout, so no
    # request is ever written into a connection the server is closing.
    limits = httpx.Limits(max_connections=2 * IN_FLIGHT, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        answers = await asyncio.gather(
            *(deliver_three_times(http, gate, body, meta_headers(body, secret)) for body in bodies)
        )
    return [status for statuses in answers for status in statuses]


def test_overlapping_retries_of_a_batch_store_each_message_once(service: Any, tenant: Any):
    channel = whatsapp_channel(tenant)
    bodies = [
        whatsapp_text(channel, f"wamid.CONCURRENT.{i}", f"message {i}",
                      wa_id=f"1650555{i % SENDERS:04d}", name=f"Sender {i % SENDERS}",
                      timestamp=1749416383 + i)
        for i in range(MESSAGES)
    ]

    statuses = asyncio.run(deliver_all(service.url, bodies, channel.secret))

    assert statuses == [200] * (3 * MESSAGES)
    stored = rows(service, Message, col(Message.channel_id) == channel.id)
    assert sorted(m.external_id or "" for m in stored) == sorted(
        f"wamid.CONCURRENT.{i}" for i in range(MESSAGES))
    received = events_of(service, tenant.org_id, "message.received")
    assert sorted(e.data["id"] for e in received) == sorted(m.id for m in stored)
    # Each sender is one contact, one lead and one conversation, however the copies raced.
    org = col(Contact.organization_id) == tenant.org_id
    assert len(rows(service, Contact, org)) == SENDERS
    assert len(rows(service, Lead, col(Lead.organization_id) == tenant.org_id)) == SENDERS
    convs = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert len(convs) == SENDERS
    assert sorted(c.unread_count for c in convs) == [MESSAGES // SENDERS] * SENDERS
    for kind in ("contact.created", "lead.created", "conversation.created"):
        assert len(events_of(service, tenant.org_id, kind)) == SENDERS, kind
    # The outbox numbers events densely: no gap, no repeat.
    ids = [e.id for e in events_of(service, tenant.org_id)]
    assert ids == list(range(1, len(ids) + 1))
