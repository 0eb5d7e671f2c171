"""A per-channel cap on platforms' deliveries (`INBOX_RATE_LIMITS` category `webhook`),
off unless set: past it a delivery is answered 429 with Retry-After, which platforms
retry, and nothing of it is stored; the archive records it as rate_limited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col
from support import BackgroundLoop

from inbox.models import Message, WebhookRecord
from tests.inbox.conftest import Service
from tests.inbox.platforms import post_meta, rows, wait_for, whatsapp_channel, whatsapp_text
from tests.inbox.ratelimit.budgets import RATES, serve, stop

pytestmark = pytest.mark.backend("sqlite")


@pytest.fixture(scope="module")
def capped(database_url: str, loop: BackgroundLoop) -> Iterator[Service]:
    """Three deliveries an hour per channel."""
    service, server = serve(database_url, loop, rate_limits=RATES + ",webhook=3/hour")
    yield service
    stop(service, server)


@pytest.fixture(scope="module")
def uncapped(database_url: str, loop: BackgroundLoop) -> Iterator[Service]:
    service, server = serve(database_url, loop)
    yield service
    stop(service, server)


def deliver(service: Service, channel: Any, text: str) -> Any:
    body = whatsapp_text(channel, f"wamid.{uuid.uuid4().hex}", text)
    return post_meta(service, "whatsapp", body, channel.secret)


def texts(service: Service, channel: Any) -> list[str | None]:
    found = rows(service, Message, col(Message.channel_id) == channel.id, order=col(Message.id))
    return [m.content for m in found]


def test_past_the_cap_a_channel_s_delivery_is_refused_with_retry_after(capped):
    channel = whatsapp_channel(capped.new_tenant())
    answers = [deliver(capped, channel, f"message {n}") for n in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert texts(capped, channel) == ["message 0", "message 1", "message 2"]

    # Another channel has its own budget.
    other = whatsapp_channel(capped.new_tenant())
    assert deliver(capped, other, "elsewhere").status_code == 200


def test_a_refused_delivery_is_archived_as_rate_limited(capped):
    tenant = capped.new_tenant()
    channel = whatsapp_channel(tenant)
    marker = uuid.uuid4().hex
    for n in range(3):
        deliver(capped, channel, f"{marker} allowed {n}")
    assert deliver(capped, channel, f"{marker} refused").status_code == 429

    def refused() -> list[WebhookRecord]:
        return [r for r in rows(capped, WebhookRecord, col(WebhookRecord.id) > 0)
                if f"{marker} refused".encode() in r.body]

    [record] = wait_for(refused, what="the refused delivery's record")
    assert (record.outcome, record.status) == ("rate_limited", 429)
    assert (record.organization_id, record.channel_id) == (tenant.org_id, channel.id)


def test_forged_deliveries_spend_nothing_of_a_channel_s_cap(capped):
    channel = whatsapp_channel(capped.new_tenant())
    for n in range(5):
        body = whatsapp_text(channel, f"wamid.forged{n}", "forged")
        assert post_meta(capped, "whatsapp", body, "not-the-secret").status_code == 401
    assert deliver(capped, channel, "genuine").status_code == 200


def test_without_a_cap_deliveries_are_never_limited(uncapped):
    channel = whatsapp_channel(uncapped.new_tenant())
    answers = [deliver(uncapped, channel, f"message {n}") for n in range(8)]
    assert [r.status_code for r in answers] == [200] * 8
    assert not any("x-ratelimit-limit" in r.headers for r in answers)
