"""What WhatsApp says about a channel's account, posted twice to a real server: recorded
on the channel as its health, shown by GET /api/channels/{id}, told once as
channel.updated; a disabled channel's replies fail at once with the platform's reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.inbox.live.wsclient import drain, frames_until, open_ws, ready, rest, stored
from tests.inbox.platforms import (
    meta_headers,
    unique_digits,
    whatsapp_body,
    whatsapp_channel,
    whatsapp_text,
)

DOC_BUSINESS_ACCOUNT = b"102290129340398"

HEALTH = {
    "account_update_restricted.json": (
        "restricted", "Restricted: biz initiated messaging until 2026-12-31T00:00:00+0000"),
    "account_update_disabled.json": (
        "disabled", "The WhatsApp Business Account was disabled on 2026-12-15 (scam)"),
    "phone_number_quality_update.json": (
        "restricted", "The phone number's quality is flagged (messaging limit TIER_1K)"),
}


def account_channel(tenant: Any, account: str | None = None, **settings: Any) -> tuple[Any, str]:
    account = account or f"102{unique_digits(12)}"
    return whatsapp_channel(tenant, business_account_id=account, **settings), account


def account_body(channel: Any, account: str, name: str) -> bytes:
    return whatsapp_body(channel, name).replace(DOC_BUSINESS_ACCOUNT, account.encode())


async def post(api: Any, body: bytes, secret: str) -> dict[str, Any]:
    r = await api.post("/webhooks/whatsapp", content=body, headers=meta_headers(body, secret))
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize("name", list(HEALTH))
async def test_an_account_notice_becomes_the_channels_health_told_once(service, tenant, name):
    channel, account = account_channel(tenant)
    token = service.token_for(tenant.owner)
    body = account_body(channel, account, name)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        first = await post(api, body, channel.secret)
        [event] = stored(await frames_until(ws, lambda f: f["type"] == "channel.updated"))
        again = await post(api, body, channel.secret)
        assert stored(await drain(ws)) == []

        shown = (await api.get(f"/api/channels/{channel.id}")).json()
        assert (shown["health"], shown["health_reason"]) == HEALTH[name]
        assert shown["health_changed_at"] is not None
        assert event["data"] == shown
        for secret in ("access_token", "app_secret", "verify_token"):
            assert channel.settings[secret] not in str(event)
        assert (first["updated"], again["updated"], again["stored"]) == (1, 0, 0)


async def test_a_reinstated_account_is_healthy_again(service, tenant):
    channel, account = account_channel(tenant)
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        for name in ("account_update_disabled.json", "account_update_reinstated.json"):
            for _ in range(2):
                await post(api, account_body(channel, account, name), channel.secret)
        frames = stored(await drain(ws))
        shown = (await api.get(f"/api/channels/{channel.id}")).json()
    assert [f["data"]["health"] for f in frames if f["type"] == "channel.updated"] == [
        "disabled", "ok"]
    assert (shown["health"], shown["health_reason"]) == ("ok", None)


async def test_a_notice_that_restricts_nothing_changes_nothing(service, tenant):
    channel, account = account_channel(tenant)
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        for name in ("message_template_status_update.json", "account_update.json",
                     "business_capability_update.json"):
            answer = await post(api, account_body(channel, account, name), channel.secret)
            assert (answer["stored"], answer["updated"]) == (0, 0)
        shown = (await api.get(f"/api/channels/{channel.id}")).json()
    assert (shown["health"], shown["health_reason"]) == ("ok", None)


async def test_an_account_notice_reaches_every_channel_of_the_account(service, tenant):
    first, account = account_channel(tenant)
    # Numbers of one account, connected through the same Meta app: one app secret.
    second, _ = account_channel(tenant, account, app_secret=first.secret)
    other, _ = account_channel(tenant)
    token = service.token_for(tenant.owner)
    async with rest(service.url, token) as api:
        await post(api, account_body(first, account, "account_update_disabled.json"),
                   first.secret)
        health = {
            c.id: (await api.get(f"/api/channels/{c.id}")).json()["health"]
            for c in (first, second, other)
        }
    assert health == {first.id: "disabled", second.id: "disabled", other.id: "ok"}


async def test_a_disabled_channels_reply_fails_at_once_with_the_reason(service, tenant, platform):
    channel, account = account_channel(tenant)
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        await post(api, whatsapp_text(channel, "wamid.before-ban", "Hello"), channel.secret)
        await post(api, account_body(channel, account, "account_update_disabled.json"),
                   channel.secret)
        conversations = (await api.get("/api/conversations",
                                       params={"channel_id": channel.id})).json()["data"]
        [conversation] = [c for c in conversations if c["channel_id"] == channel.id]
        r = await api.post(f"/api/conversations/{conversation['id']}/messages",
                           json={"content": "Are you there?"})
        assert r.status_code == 201, r.text
        reply = r.json()
        [failed] = [f for f in stored(await frames_until(
            ws, lambda f: f["type"] == "message.status" and f["data"]["id"] == reply["id"]))
            if f["type"] == "message.status"]
        shown = (await api.get(f"/api/conversations/{conversation['id']}/messages")).json()
    assert failed["data"]["status"] == "failed"
    assert failed["data"]["error_code"] == "channel_disabled"
    assert failed["data"]["error"] == HEALTH["account_update_disabled.json"][1]
    assert shown["data"][-1]["status"] == "failed"
    await asyncio.sleep(0)
    assert [q for q in platform.requests if q.path == f"/{channel.key}/messages"] == []
