"""A platform delivery answers alike whether the routing key it names is connected here
or not, to anyone who cannot sign for that key's channel: unsigned, forged, or signed
with the secret of a channel of their own in another organization."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlmodel import col

from inbox.models import Contact, Conversation, Message
from tests.inbox.platforms import (
    Connected,
    events_of,
    instagram_body,
    instagram_channel,
    post_meta,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    unique_digits,
    whatsapp_body,
    whatsapp_channel,
)

CHANNELS = {"whatsapp": whatsapp_channel, "instagram": instagram_channel, "sms": sms_channel}
FORGED = "not-a-secret-of-anyone-here"


def never_connected(channel: Connected) -> Connected:
    """The same kind of channel under a key no channel of the service has."""
    key = {"whatsapp": f"106{unique_digits(9)}", "instagram": f"178{unique_digits(9)}",
           "sms": f"+1415{unique_digits(7)}"}[channel.kind]
    return replace(channel, id=0, key=key)


def deliver(service: Any, channel: Connected, secret: str | None) -> httpx.Response:
    """A customer's text to ``channel``, signed with ``secret`` (None: unsigned)."""
    if channel.kind == "sms":
        body = sms_body(channel, "sms.txt")
        return post_twilio(service, "/webhooks/twilio/sms", body, secret)
    body = (whatsapp_body if channel.kind == "whatsapp" else instagram_body)(channel, "text.json")
    return post_meta(service, channel.kind, body, secret)


def answer(r: httpx.Response) -> tuple[int, str, Any]:
    content_type = r.headers["content-type"]
    body = r.json() if content_type.startswith("application/json") else r.text
    return r.status_code, content_type, body


def nothing_stored(service: Any, tenant: Any) -> bool:
    org_id = tenant.org_id
    return (
        rows(service, Message, col(Message.organization_id) == org_id) == []
        and rows(service, Contact, col(Contact.organization_id) == org_id) == []
        and rows(service, Conversation, col(Conversation.organization_id) == org_id) == []
        and events_of(service, org_id) == []
    )


@pytest.mark.parametrize("kind", ["whatsapp", "instagram", "sms"])
def test_a_connected_key_and_an_unknown_one_answer_alike_to_whoever_cannot_sign_for_it(
    service, tenant, other_tenant, kind
):
    victim = CHANNELS[kind](tenant)
    unknown = never_connected(victim)
    # Someone with a channel of their own here: they hold its secret.
    theirs = CHANNELS[kind](other_tenant)

    for signer in (None, FORGED, theirs.secret):
        known_answer = answer(deliver(service, victim, signer))
        unknown_answer = answer(deliver(service, unknown, signer))
        assert known_answer == unknown_answer, signer
        expected = 401 if signer in (None, FORGED) else 200
        assert known_answer[0] == expected, (signer, known_answer)
    assert nothing_stored(service, tenant)

    # The channel's own secret still stores the message.
    r = deliver(service, victim, victim.secret)
    assert r.status_code == 200, r.text
    assert len(rows(service, Message, col(Message.channel_id) == victim.id)) == 1


def test_a_delivery_naming_two_channels_is_stored_only_if_both_vouch(
    service, tenant, other_tenant
):
    mine = whatsapp_channel(tenant)
    theirs = whatsapp_channel(other_tenant)
    body = json.loads(whatsapp_body(mine, "text.json"))
    second = json.loads(whatsapp_body(theirs, "text.json"))["entry"][0]
    body["entry"].append(second)
    raw = json.dumps(body).encode()

    r = post_meta(service, "whatsapp", raw, theirs.secret)

    assert r.status_code == 200
    assert r.json()["stored"] == 0
    assert nothing_stored(service, tenant) and nothing_stored(service, other_tenant)
