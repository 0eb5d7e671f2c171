"""Twilio deliveries that name no number of ours: status callbacks of replies sent
through a Messaging Service, from an alphanumeric sender or over WhatsApp reach the
reply they report on; anything routed nowhere is acknowledged only when a token of
ours signed it; an SMS from the channel's own number makes no contact."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlmodel import col

from inbox.models import Contact, Conversation, Lead, Message
from tests.connectors.helpers import payload
from tests.inbox.platforms import (
    Connected,
    events_of,
    form_body,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    wait_for,
)

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
STATUS = "/webhooks/twilio/status"
CUSTOMER = "+15558675310"


def new_account() -> str:
    """An account SID no other channel of the test session uses."""
    return f"AC{uuid.uuid4().hex}"


def twilio_line(tenant: Any) -> Connected:
    """An SMS channel of an account of its own, so its messages are the account's only."""
    return sms_channel(tenant, account_sid=new_account())


def callback(name: str, channel: Connected, sid: str, **fields: str | None) -> bytes:
    """The payload file ``name`` about message ``sid`` of ``channel``'s account, with
    ``fields`` set (None: left out), From as the file has it unless set."""
    pairs = parse_qsl(payload("twilio", name).decode(), keep_blank_values=True)
    values = {"MessageSid": sid, "SmsSid": sid, "AccountSid": channel.settings["account_sid"]}
    values.update({k: v for k, v in fields.items() if v is not None})
    dropped = {k for k, v in fields.items() if v is None}
    return form_body([(k, v) for k, v in pairs if k not in dropped], values)


def sent_reply(service: Any, tenant: Any, channel: Connected) -> tuple[int, int, str]:
    """A customer texted ``channel`` and an agent answered; once Twilio (the fake
    platform) took the answer: the conversation, the reply and the reply's SID."""
    r = post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), channel.secret)
    assert r.status_code == 200, r.text
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    r = tenant.api.post(f"/api/conversations/{conv.id}/messages", json={"content": "We are."})
    assert r.status_code == 201, r.text
    reply_id = r.json()["id"]
    sent = wait_for(
        lambda: next(
            (m for m in rows(service, Message, col(Message.id) == reply_id) if m.status == "sent"),
            None,
        ),
        what="the reply to be sent",
    )
    assert sent.external_id and sent.external_id.startswith("SM")
    assert conv.id is not None
    return conv.id, reply_id, sent.external_id


def as_seen(tenant: Any, conv_id: int, message_id: int) -> tuple[str, str | None, str | None]:
    """The reply as an agent's client reads it: status, error code and error."""
    r = tenant.api.get(f"/api/conversations/{conv_id}/messages")
    assert r.status_code == 200, r.text
    [message] = [m for m in r.json()["data"] if m["id"] == message_id]
    return message["status"], message["error_code"], message["error"]


def status_events(service: Any, tenant: Any, message_id: int) -> list[str]:
    return [
        e.data["status"]
        for e in events_of(service, tenant.org_id, "message.status")
        if e.data["id"] == message_id
    ]


# -- routed by the message the service sent ------------------------------------------


def test_a_messaging_service_callback_without_from_reaches_the_reply(service, tenant):
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    body = callback("status_messaging_service.txt", channel, sid)
    assert b"From=" not in body and b"MessagingServiceSid=MG" in body

    r = post_twilio(service, STATUS, body, channel.secret)

    assert (r.status_code, r.text) == (200, TWIML)
    assert as_seen(tenant, conv, reply) == ("delivered", None, None)
    assert status_events(service, tenant, reply)[-1] == "delivered"


def test_an_alphanumeric_sender_s_undelivered_reply_fails_in_twilio_s_words(service, tenant):
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    body = callback("status_undelivered_30007.txt", channel, sid, From="AcmeStore")

    r = post_twilio(service, STATUS, body, channel.secret)

    assert (r.status_code, r.text) == (200, TWIML)
    assert as_seen(tenant, conv, reply) == ("failed", "30007", "Message filtered")


def test_a_whatsapp_callback_through_twilio_reaches_the_reply(service, tenant):
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    body = callback("status_whatsapp_read.txt", channel, sid)
    assert b"From=whatsapp%3A" in body and b"ChannelToAddress=" in body

    r = post_twilio(service, STATUS, body, channel.secret)

    assert (r.status_code, r.text) == (200, TWIML)
    assert as_seen(tenant, conv, reply) == ("read", None, None)


def test_a_callback_from_a_number_of_ours_still_reports_its_error(service, tenant):
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    body = callback("status_undelivered.txt", channel, sid, From=channel.key)

    assert post_twilio(service, STATUS, body, channel.secret).status_code == 200
    assert as_seen(tenant, conv, reply) == ("failed", "30003", "Unreachable destination handset")


def test_a_retried_callback_changes_nothing_more(service, tenant):
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    body = callback("status_messaging_service.txt", channel, sid)
    post_twilio(service, STATUS, body, channel.secret)
    assert as_seen(tenant, conv, reply) == ("delivered", None, None)
    events = events_of(service, tenant.org_id)

    again = post_twilio(service, STATUS, body, channel.secret)

    assert (again.status_code, again.text) == (200, TWIML)
    assert events_of(service, tenant.org_id) == events


# -- never an unsigned callback -----------------------------------------------------


@pytest.mark.parametrize("signer", ["nobody", "a stranger", "another channel of ours"])
def test_a_callback_routed_by_its_message_is_checked_with_that_channel_s_token(
    service, tenant, other_tenant, signer
):
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    other = twilio_line(other_tenant)
    token = {"nobody": None, "a stranger": "not-a-token-of-ours",
             "another channel of ours": other.secret}[signer]
    events = events_of(service, tenant.org_id)

    r = post_twilio(service, STATUS, callback("status_messaging_service.txt", channel, sid), token)

    if token is None or token == "not-a-token-of-ours":
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "AUTHENTICATION_FAILED"
    else:
        # Signed by a token of ours, though not the channel's: acknowledged as for a
        # message not sent here, so that it tells nobody which messages are.
        assert (r.status_code, r.text) == (200, TWIML)
    assert as_seen(tenant, conv, reply) == ("sent", None, None)
    assert events_of(service, tenant.org_id) == events


def test_a_callback_naming_another_account_does_not_reach_the_reply(service, tenant):
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    other = twilio_line(tenant)
    body = callback(
        "status_messaging_service.txt", channel, sid, AccountSid=other.settings["account_sid"]
    )

    r = post_twilio(service, STATUS, body, channel.secret)

    # Signed by a token of ours: acknowledged, so Twilio does not retry; nothing applied.
    assert (r.status_code, r.text) == (200, TWIML)
    assert as_seen(tenant, conv, reply) == ("sent", None, None)


def test_a_callback_about_a_message_not_sent_here(service, tenant):
    channel = twilio_line(tenant)
    body = callback("status_messaging_service.txt", channel, f"SM{uuid.uuid4().hex}")

    signed = post_twilio(service, STATUS, body, channel.secret)
    unsigned = post_twilio(service, STATUS, body, None)
    stranger = post_twilio(service, STATUS, body, "not-a-token-of-ours")

    assert (signed.status_code, signed.text) == (200, TWIML)
    assert (unsigned.status_code, stranger.status_code) == (401, 401)
    assert events_of(service, tenant.org_id) == []


# -- incoming messages stay routed by To ----------------------------------------------


def nothing_stored(service: Any, tenant: Any) -> bool:
    org = col(Message.organization_id) == tenant.org_id
    return (
        rows(service, Message, org) == []
        and rows(service, Contact, col(Contact.organization_id) == tenant.org_id) == []
        and rows(service, Lead, col(Lead.organization_id) == tenant.org_id) == []
        and events_of(service, tenant.org_id) == []
    )


def test_an_sms_to_a_number_not_connected_here_is_acknowledged_only_if_signed_by_us(
    service, tenant
):
    channel = twilio_line(tenant)
    stranger = sms_body(channel, "sms.txt", To="+14155550000")
    known = sms_body(channel, "sms.txt")

    signed = post_twilio(service, "/webhooks/twilio/sms", stranger, channel.secret)
    forged = post_twilio(service, "/webhooks/twilio/sms", stranger, "not-a-token-of-ours")
    known_forged = post_twilio(service, "/webhooks/twilio/sms", known, "not-a-token-of-ours")
    unsigned = post_twilio(service, "/webhooks/twilio/sms", stranger, None)
    known_unsigned = post_twilio(service, "/webhooks/twilio/sms", known, None)

    assert (signed.status_code, signed.text) == (200, TWIML)
    # An unknown number and a known one answer alike: nobody learns which are connected.
    assert forged.status_code == known_forged.status_code == 401
    assert forged.json() == known_forged.json()
    assert unsigned.status_code == known_unsigned.status_code == 401
    assert unsigned.json() == known_unsigned.json()
    assert nothing_stored(service, tenant)


def test_an_sms_naming_no_number_is_refused_unless_signed(service, tenant):
    channel = twilio_line(tenant)
    pairs = parse_qsl(payload("twilio", "sms.txt").decode(), keep_blank_values=True)
    body = form_body([(k, v) for k, v in pairs if k != "To"], {})

    unsigned = post_twilio(service, "/webhooks/twilio/sms", body, None)
    signed = post_twilio(service, "/webhooks/twilio/sms", body, channel.secret)

    assert unsigned.status_code == 401
    # Signed by us, yet not a message Twilio sends: the signer is told why.
    assert signed.status_code == 400
    assert signed.json()["error"]["code"] == "MALFORMED_REQUEST"
    assert nothing_stored(service, tenant)


@pytest.mark.parametrize("sender", ["own number", "own number, spaced"])
def test_an_sms_from_the_channel_s_own_number_makes_no_contact(service, tenant, sender):
    channel = twilio_line(tenant)
    own = channel.key if sender == "own number" else f"{channel.key[:2]} {channel.key[2:]}"
    body = sms_body(channel, "sms.txt", From=own)

    r = post_twilio(service, "/webhooks/twilio/sms", body, channel.secret)

    assert (r.status_code, r.text) == (200, TWIML)
    assert nothing_stored(service, tenant)
    # The line still takes customers' messages.
    r = post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "mms.txt"), channel.secret)
    assert r.status_code == 200
    [contact] = rows(service, Contact, col(Contact.organization_id) == tenant.org_id)
    assert contact.phone == CUSTOMER


def test_only_a_callback_naming_no_number_of_ours_looks_its_message_up(
    service, tenant, monkeypatch
):
    channels = service.app.state.inbox.channels
    looked_up: list[list[str]] = []
    real = channels.sent_through

    async def counting(kind: str, external_ids: Any, accounts: Any = ()) -> Any:
        looked_up.append(list(external_ids))
        return await real(kind, external_ids, accounts)

    monkeypatch.setattr(channels, "sent_through", counting)
    channel = twilio_line(tenant)
    conv, reply, sid = sent_reply(service, tenant, channel)
    from_our_number = callback("status_sent.txt", channel, sid, From=channel.key)
    assert post_twilio(service, STATUS, from_our_number, channel.secret).status_code == 200
    unsigned = callback("status_messaging_service.txt", channel, sid)
    assert post_twilio(service, STATUS, unsigned, None).status_code == 401
    # Incoming messages and callbacks from our number, and forged callbacks: no look-up.
    assert looked_up == []

    body = callback("status_messaging_service.txt", channel, sid)
    assert post_twilio(service, STATUS, body, channel.secret).status_code == 200
    assert looked_up == [[sid]]
    assert as_seen(tenant, conv, reply) == ("delivered", None, None)
