"""Instagram senders are named from their Graph API profile: the webhook answers at
once, the contact and the lead take the name a moment later (``contact.updated``,
``lead.updated``), and nothing an agent typed is overwritten.

The service's Graph API is the recording fake of ``tests/connectors/fake_platform.py``;
every test writes from a sender id of its own.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.connectors.fake_platform import (
    FakePlatform,
    Reply,
    instagram_profile,
    rate_limited,
    server_error,
    slow,
)
from tests.inbox.live.wsclient import frames_until, of_type, open_ws, ready, rest
from tests.inbox.platforms import (
    Connected,
    instagram_body,
    instagram_channel,
    meta_headers,
    post_meta,
    unique_digits,
    wait_for,
)

# Long enough to see a retry that should not happen: the first comes within a second.
QUIET_SECONDS = 1.5


def new_sender() -> str:
    return f"9{unique_digits(15)}"


def from_sender(channel: Connected, sender: str, mid: str, kind: str = "text.json") -> bytes:
    """A documented delivery (a text, or a reaction) written by ``sender``."""
    body = json.loads(instagram_body(channel, kind))
    item = body["entry"][0]["messaging"][0]
    item["sender"]["id"] = sender
    if "message" in item:
        item["message"]["mid"] = mid
    return json.dumps(body).encode()


def the_contact(tenant: Any) -> dict[str, Any]:
    """The tenant's only contact as the API shows it, with its leads."""
    [listed] = tenant.api.get("/api/contacts").json()["data"]
    detail = tenant.api.get(f"/api/contacts/{listed['id']}")
    assert detail.status_code == 200, detail.text
    return detail.json()  # type: ignore[no-any-return]


def profile_statuses(platform: FakePlatform, sender: str) -> list[int]:
    return [r.status for r in platform.profile_requests(sender)]


async def test_a_new_sender_is_named_after_the_webhook_answered(service, tenant, platform):
    channel = instagram_channel(tenant)
    sender = new_sender()
    # The platform takes its time: the webhook must not wait for it (if it did, the
    # contact would be named by the time the answer came).
    platform.profile(
        sender, slow(4.0, then=instagram_profile(sender, "Sheena Nelson", "sheena.nelson"))
    )
    token = service.token_for(tenant.owner)
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        body = from_sender(channel, sender, f"m_{sender}_1")

        r = await api.post("/webhooks/instagram", content=body,
                           headers=meta_headers(body, channel.secret))

        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 1
        [contact] = (await api.get("/api/contacts")).json()["data"]
        assert contact["name"] is None
        [lead] = (await api.get("/api/leads")).json()["data"]
        assert lead["name"] == sender

        frames = await frames_until(ws, lambda f: f["type"] == "lead.updated", timeout=20)

        [updated] = of_type(frames, "contact.updated")
        assert updated["data"]["id"] == contact["id"]
        assert updated["data"]["name"] == "Sheena Nelson"
        assert updated["data"]["custom_fields"]["instagram_username"] == "sheena.nelson"
        assert (frames[-1]["data"]["id"], frames[-1]["data"]["name"]) == (
            lead["id"], "Sheena Nelson")

    shown = the_contact(tenant)
    assert shown["name"] == "Sheena Nelson"
    assert shown["custom_fields"] == {"instagram_username": "sheena.nelson"}
    assert [lead["name"] for lead in shown["leads"]] == ["Sheena Nelson"]
    assert [c["last_message_preview"] for c in shown["conversations"]] == [
        "Do you ship to Canada?"]
    [request] = platform.profile_requests(sender)
    assert request.headers["authorization"] == f"Bearer {channel.settings['access_token']}"
    assert httpx.QueryParams(request.query)["fields"] == "name,username,profile_pic"


def test_a_sender_is_looked_up_once_not_for_every_message(service, tenant, platform):
    channel = instagram_channel(tenant)
    sender = new_sender()
    # A profile without a name or a username leaves the contact unnamed: only the
    # service's memory keeps it from asking again.
    platform.profile(sender, instagram_profile(sender, None, None))

    first = post_meta(service, "instagram", from_sender(channel, sender, f"m_{sender}_1"),
                      channel.secret)
    assert first.status_code == 200, first.text
    wait_for(lambda: platform.profile_requests(sender), timeout=10, what="the profile request")
    for n in (2, 3):
        r = post_meta(service, "instagram", from_sender(channel, sender, f"m_{sender}_{n}"),
                      channel.secret)
        assert (r.status_code, r.json()["stored"]) == (200, 1)
    time.sleep(QUIET_SECONDS)

    assert profile_statuses(platform, sender) == [200]
    assert the_contact(tenant)["name"] is None


def test_a_reaction_from_a_new_sender_names_them_too(service, tenant, platform):
    channel = instagram_channel(tenant)
    sender = new_sender()
    platform.profile(sender, instagram_profile(sender, None, "only.a.username"))

    r = post_meta(service, "instagram", from_sender(channel, sender, "", "reaction.json"),
                  channel.secret)
    assert r.status_code == 200, r.text

    # Without a name, the username is the best the agent gets.
    shown = wait_for(lambda: (c := the_contact(tenant))["name"] and c, timeout=10,
                     what="the contact to be named")
    assert shown["name"] == "only.a.username"
    assert [lead["name"] for lead in shown["leads"]] == ["only.a.username"]


def test_what_an_agent_typed_meanwhile_is_kept(service, tenant, platform):
    channel = instagram_channel(tenant)
    sender = new_sender()
    platform.profile(
        sender, slow(1.5, then=instagram_profile(sender, "Insta Name", "insta.name"))
    )
    r = post_meta(service, "instagram", from_sender(channel, sender, f"m_{sender}_1"),
                  channel.secret)
    assert r.status_code == 200, r.text
    wait_for(lambda: platform.profile_requests(sender), timeout=10, what="the profile request")

    # While the platform answers, an agent names the contact and the lead.
    contact = the_contact(tenant)
    renamed = tenant.api.patch(f"/api/contacts/{contact['id']}", json={"name": "Dana (VIP)"})
    assert renamed.status_code == 200, renamed.text
    [lead] = contact["leads"]
    renamed = tenant.api.patch(f"/api/leads/{lead['id']}", json={"name": "Dana's order"})
    assert renamed.status_code == 200, renamed.text

    # The username fills the field that was empty: the profile has been applied.
    shown = wait_for(
        lambda: (c := the_contact(tenant))["custom_fields"].get("instagram_username") and c,
        timeout=10, what="the profile to be applied",
    )
    assert shown["custom_fields"]["instagram_username"] == "insta.name"
    assert shown["name"] == "Dana (VIP)"
    assert [lead["name"] for lead in shown["leads"]] == ["Dana's order"]


def test_a_person_the_platform_does_not_show_keeps_the_id_name(service, tenant, platform):
    channel = instagram_channel(tenant)
    sender = new_sender()
    platform.profile(
        sender, Reply(status=404, body={"error": {"message": "Unknown path", "code": 803}})
    )

    r = post_meta(service, "instagram", from_sender(channel, sender, f"m_{sender}_1"),
                  channel.secret)
    assert r.status_code == 200, r.text
    wait_for(lambda: platform.profile_requests(sender), timeout=10, what="the profile request")
    again = post_meta(service, "instagram", from_sender(channel, sender, f"m_{sender}_2"),
                      channel.secret)
    assert again.status_code == 200, again.text
    time.sleep(QUIET_SECONDS)

    assert profile_statuses(platform, sender) == [404]
    shown = the_contact(tenant)
    assert shown["name"] is None
    assert shown["custom_fields"] == {}
    assert [lead["name"] for lead in shown["leads"]] == [sender]


def test_rate_limits_and_server_errors_are_retried_until_the_name_arrives(
    service, tenant, platform
):
    channel = instagram_channel(tenant)
    sender = new_sender()
    platform.profile(
        sender,
        rate_limited(retry_after=1),
        server_error(),
        instagram_profile(sender, "Kai Lee", "kai.lee"),
    )

    r = post_meta(service, "instagram", from_sender(channel, sender, f"m_{sender}_1"),
                  channel.secret)
    assert r.status_code == 200, r.text

    shown = wait_for(lambda: (c := the_contact(tenant))["name"] and c, timeout=15,
                     what="the contact to be named")
    assert shown["name"] == "Kai Lee"
    assert [lead["name"] for lead in shown["leads"]] == ["Kai Lee"]
    statuses = profile_statuses(platform, sender)
    assert statuses == [429, 500, 200]
    # The platform's Retry-After was obeyed.
    first, second = platform.profile_requests(sender)[:2]
    assert second.received_at - first.received_at >= 0.9


def test_a_sandbox_channel_never_asks_the_platform(service, tenant, platform):
    channel = instagram_channel(tenant, sandbox=True)
    sender = new_sender()
    platform.profile(sender, instagram_profile(sender, "Never Asked", "never.asked"))

    r = post_meta(service, "instagram", from_sender(channel, sender, f"m_{sender}_1"),
                  channel.secret)
    assert r.status_code == 200, r.text
    time.sleep(QUIET_SECONDS)

    assert platform.profile_requests(sender) == []
    shown = the_contact(tenant)
    assert shown["name"] is None
    assert [lead["name"] for lead in shown["leads"]] == [sender]
