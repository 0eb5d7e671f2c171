"""What WhatsApp tells about the person behind a number, posted to a real server: a
changed number or user id moves the contact (the old identity kept), a new profile
name renames the contact on both storing paths (never over an agent's choice, the old
name kept in the identity's history), and the channel's own number is never a contact.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.whatsapp import WhatsAppAdapter
from inbox.services.ingest import writes_under
from tests.connectors.helpers import meta_request
from tests.inbox.live.wsclient import drain, frames_until, open_ws, ready, rest, stored
from tests.inbox.platforms import (
    meta_headers,
    unique_digits,
    whatsapp_body,
    whatsapp_channel,
    whatsapp_status,
    whatsapp_text,
)


async def post(api: Any, body: bytes, secret: str) -> dict[str, Any]:
    r = await api.post("/webhooks/whatsapp", content=body, headers=meta_headers(body, secret))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def contacts_of(api: Any, channel_id: int) -> list[dict[str, Any]]:
    """The contacts with a conversation on the channel, each in full (identities too)."""
    r = await api.get("/api/conversations", params={"channel_id": channel_id})
    assert r.status_code == 200, r.text
    ids = sorted({c["contact_id"] for c in r.json()["data"] if c["channel_id"] == channel_id})
    found = []
    for contact_id in ids:
        r = await api.get(f"/api/contacts/{contact_id}")
        assert r.status_code == 200, r.text
        found.append(r.json())
    return found


def with_user_id(body: bytes, user_id: str, *, withhold_number: bool = False) -> bytes:
    """A message delivery whose sender also carries a business-scoped user id; with
    ``withhold_number``, the id alone names them (a user behind a username)."""
    data = json.loads(body)
    value = data["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = user_id
    if withhold_number:
        del value["contacts"][0]["wa_id"]
        del value["messages"][0]["from"]
    return json.dumps(data).encode()


def with_a_status(body: bytes, channel: Any) -> bytes:
    """The same message with a status beside it: a delivery the batch path never takes."""
    data = json.loads(body)
    status = json.loads(whatsapp_status(channel, f"wamid.unknown{unique_digits(6)}", "sent"))
    data["entry"][0]["changes"][0]["value"]["statuses"] = status["entry"][0]["changes"][0][
        "value"
    ]["statuses"]
    return json.dumps(data).encode()


def system_body(channel: Any, name: str, **notice: str) -> bytes:
    data = json.loads(whatsapp_body(channel, name))
    data["entry"][0]["changes"][0]["value"]["messages"][0]["system"].update(notice)
    return json.dumps(data).encode()


# -- a changed number -------------------------------------------------------------------


async def test_a_changed_number_moves_the_contact_and_keeps_the_old_one(service, tenant):
    channel = whatsapp_channel(tenant)
    token = service.token_for(tenant.owner)
    notice = whatsapp_body(channel, "system_user_changed_number.json")
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        await post(api, whatsapp_text(channel, "wamid.before", "Hi"), channel.secret)
        await drain(ws)

        first = await post(api, notice, channel.secret)
        frames = stored(await frames_until(ws, lambda f: f["type"] == "conversation.updated"))
        again = await post(api, notice, channel.secret)
        assert stored(await drain(ws)) == []
        later = await post(
            api,
            whatsapp_text(channel, "wamid.after", "New number, same me", wa_id="16505559876"),
            channel.secret,
        )

        [contact] = await contacts_of(api, channel.id)
    assert (first["stored"], first["updated"]) == (1, 1)
    assert (again["stored"], again["updated"]) == (0, 0)
    assert later["stored"] == 1
    assert contact["phone"] == "+16505559876"
    old, new = contact["identities"]
    assert (old["external_id"], new["external_id"]) == ("16505551234", "16505559876")
    assert old["replaced_at"] is not None and new["replaced_at"] is None
    assert new["profile_name"] == "Sheena Nelson"
    # One conversation: the message from the new number joined it.
    assert len(contact["conversations"]) == 1
    assert [f["type"] for f in frames] == [
        "message.received", "contact.updated", "conversation.updated"]
    updated = frames[1]["data"]
    assert (updated["id"], updated["phone"]) == (contact["id"], "+16505559876")


async def test_a_number_change_for_someone_unknown_makes_one_contact_with_both(service, tenant):
    channel = whatsapp_channel(tenant)
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        await post(api, whatsapp_body(channel, "system_user_changed_number.json"), channel.secret)
        [contact] = await contacts_of(api, channel.id)
    assert [i["external_id"] for i in contact["identities"]] == ["16505551234", "16505559876"]
    assert contact["phone"] == "+16505559876"


async def test_a_new_number_that_wrote_first_stays_its_own_contact(service, tenant):
    # Two records are never merged behind an agent's back.
    channel = whatsapp_channel(tenant)
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        await post(api, whatsapp_text(channel, "wamid.old", "Old phone"), channel.secret)
        await post(
            api,
            whatsapp_text(channel, "wamid.new", "New phone", wa_id="16505559876", name="S."),
            channel.secret,
        )
        result = await post(
            api, whatsapp_body(channel, "system_user_changed_number.json"), channel.secret
        )
        contacts = await contacts_of(api, channel.id)
    assert result["duplicates"] == 1
    assert sorted(len(c["identities"]) for c in contacts) == [1, 1]


# -- a changed user id ------------------------------------------------------------------


async def test_a_changed_user_id_follows_the_contact_and_a_hidden_number_still_finds_it(
    service, tenant
):
    channel = whatsapp_channel(tenant)
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        first = whatsapp_text(channel, "wamid.u1", "Hi there")
        await post(api, with_user_id(first, "US.1187730"), channel.secret)
        moved = await post(
            api, whatsapp_body(channel, "system_user_changed_user_id.json"), channel.secret
        )
        again = await post(
            api, whatsapp_body(channel, "system_user_changed_user_id.json"), channel.secret
        )
        # The customer adopts a username: the number is gone, the user id remains.
        hidden = whatsapp_text(channel, "wamid.u2", "Still me")
        await post(api, with_user_id(hidden, "US.4410992", withhold_number=True), channel.secret)
        [contact] = await contacts_of(api, channel.id)
        r = await api.get(f"/api/conversations/{contact['conversations'][0]['id']}/messages")
    assert (moved["updated"], again["duplicates"]) == (1, 1)
    assert [m["content"] for m in r.json()["data"]] == ["Hi there", "Still me"]
    by_number = next(i for i in contact["identities"] if i["external_id"] == "16505551234")
    assert by_number["user_id"] == "US.4410992"


async def test_a_changed_user_id_nobody_had_changes_nothing(service, tenant):
    channel = whatsapp_channel(tenant)
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        result = await post(
            api, whatsapp_body(channel, "system_user_changed_user_id.json"), channel.secret
        )
        assert await contacts_of(api, channel.id) == []
    assert (result["stored"], result["ignored"]) == (0, 1)


# -- a changed profile name ----------------------------------------------------------


PATHS = {
    "alone": lambda body, channel: body,
    "beside a status": with_a_status,
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_new_profile_name_renames_the_contact_and_keeps_the_old(service, tenant, path):
    channel = whatsapp_channel(tenant)
    shape = PATHS[path]
    token = service.token_for(tenant.owner)
    first = shape(whatsapp_text(channel, "wamid.n1", "Hi", name="Sheena Nelson"), channel)
    renamed = shape(whatsapp_text(channel, "wamid.n2", "Hi again", name="Sheena B."), channel)
    events = WhatsAppAdapter().parse(meta_request(renamed, None))
    assert (writes_under(1, events) is not None) == (path == "alone")
    async with await open_ws(service.url, token) as ws, rest(service.url, token) as api:
        await ready(ws)
        await post(api, first, channel.secret)
        await drain(ws)
        await post(api, renamed, channel.secret)
        frames = stored(await frames_until(ws, lambda f: f["type"] == "conversation.updated"))
        [contact] = await contacts_of(api, channel.id)
    assert contact["name"] == "Sheena B."
    [identity] = contact["identities"]
    assert identity["profile_name"] == "Sheena B."
    assert [n["name"] for n in identity["former_names"]] == ["Sheena Nelson"]
    assert [f["data"]["name"] for f in frames if f["type"] == "contact.updated"] == ["Sheena B."]
    [conversation] = [f for f in frames if f["type"] == "conversation.updated"]
    assert conversation["data"]["contact"]["name"] == "Sheena B."


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_new_profile_name_never_overwrites_the_name_an_agent_chose(
    service, tenant, path
):
    channel = whatsapp_channel(tenant)
    shape = PATHS[path]
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        await post(api, shape(whatsapp_text(channel, "wamid.a1", "Hi"), channel), channel.secret)
        [contact] = await contacts_of(api, channel.id)
        r = await api.patch(f"/api/contacts/{contact['id']}", json={"name": "Sheena (VIP)"})
        assert r.status_code == 200, r.text
        await post(
            api,
            shape(whatsapp_text(channel, "wamid.a2", "Hi", name="Sheena B."), channel),
            channel.secret,
        )
        [contact] = await contacts_of(api, channel.id)
    assert contact["name"] == "Sheena (VIP)"
    assert contact["identities"][0]["profile_name"] == "Sheena B."


# -- the channel's own number -----------------------------------------------------------


async def test_a_message_from_the_channels_own_number_is_no_contact(service, tenant):
    channel = whatsapp_channel(tenant)
    body = json.loads(whatsapp_text(channel, "wamid.own", "Test from our phone"))
    value = body["entry"][0]["changes"][0]["value"]
    own = value["metadata"]["display_phone_number"]
    value["contacts"][0]["wa_id"] = own
    value["messages"][0]["from"] = own
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        result = await post(api, json.dumps(body).encode(), channel.secret)
        assert await contacts_of(api, channel.id) == []
    assert (result["stored"], result["ignored"]) == (0, 1)
