"""An agent writes first: POST /api/conversations opens (or reuses) the contact's
conversation on a channel and queues its first message; the WhatsApp reply window
decides whether free-form text may go or only a template."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col

from inbox.models import Contact, ContactIdentity, Conversation
from tests.inbox.platforms import (
    event_types,
    instagram_channel,
    post_meta,
    rows,
    sms_channel,
    unique_digits,
    wait_for,
    whatsapp_channel,
    whatsapp_text,
)
from tests.inbox.templates_support import close_window, order_update, template_channel


def start(api, **body):
    return api.post("/api/conversations", json=body)


def sent_to_platform(platform, to: str) -> dict:
    def found():
        return next(
            (r.json() for r in platform.requests
             if r.method == "POST" and r.path.endswith("/messages") and r.json().get("to") == to),
            None,
        )

    return wait_for(found, what=f"a send to {to}")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_new_number_is_written_to_first_with_a_template(service, tenant, platform):
    channel, _ = template_channel(tenant, platform)
    number = f"+1415{unique_digits(7)}"

    r = start(tenant.api, channel_id=channel.id, to=number, message=order_update())

    assert r.status_code == 201, r.text
    conversation, message = r.json()["conversation"], r.json()["message"]
    assert message["content_type"] == "template"
    assert message["content"] == (
        "Order #1042\n\nHi Sam, your order #1042 has shipped.\n\nReply STOP to opt out"
    )
    assert message["status"] == "queued"
    assert conversation["channel_id"] == channel.id
    assert conversation["last_message"]["preview"].startswith("Order #1042")
    # The customer has not written: the window is closed, only templates go.
    assert when(conversation["reply_window_expires_at"]) <= when(conversation["created_at"])
    sent = sent_to_platform(platform, number[1:])
    assert sent == {
        "messaging_product": "whatsapp",
        "to": number[1:],
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "#1042"}]},
                {"type": "body", "parameters": [
                    {"type": "text", "text": "Sam"}, {"type": "text", "text": "#1042"}]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": "1042"}]},
            ],
        },
    }
    [contact] = rows(service, Contact, col(Contact.id) == conversation["contact_id"])
    assert contact.phone == number
    [identity] = rows(service, ContactIdentity, col(ContactIdentity.contact_id) == contact.id)
    assert (identity.kind, identity.external_id) == ("whatsapp", number[1:])
    types = event_types(service, tenant.org_id)
    for kind in ("contact.created", "conversation.created", "message.sent"):
        assert kind in types


def test_free_form_text_to_a_number_that_never_wrote_is_refused_and_makes_nothing(
    service, tenant, platform
):
    channel, _ = template_channel(tenant, platform)
    r = start(tenant.api, channel_id=channel.id, to="+14155550142", message={"content": "Hi!"})

    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "REPLY_WINDOW_CLOSED"
    assert "send an approved template instead" in r.json()["error"]["message"]
    assert rows(service, Conversation, col(Conversation.channel_id) == channel.id) == []


def test_text_goes_to_a_customer_who_wrote_today_in_their_open_conversation(
    service, tenant, platform
):
    channel = whatsapp_channel(tenant)
    wa_id = f"1650{unique_digits(7)}"
    body = whatsapp_text(channel, f"wamid.start-{wa_id}", "Do you ship to Lisbon?", wa_id=wa_id)
    assert post_meta(service, "whatsapp", body, channel.secret).status_code == 200
    [existing] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)

    r = start(
        tenant.api,
        channel_id=channel.id,
        contact_id=existing.contact_id,
        message={"content": "We do!"},
    )

    assert r.status_code == 201, r.text
    conversation = r.json()["conversation"]
    assert conversation["id"] == existing.id
    window = when(conversation["reply_window_expires_at"])
    assert (window - when(conversation["created_at"])).total_seconds() > 23 * 3600
    assert sent_to_platform(platform, wa_id)["text"] == {"body": "We do!"}


def test_a_closed_window_refuses_text_keeps_notes_and_takes_a_template(
    service, tenant, platform
):
    channel, _ = template_channel(tenant, platform)
    body = whatsapp_text(channel, f"wamid.win-{channel.id}", "Hello?", wa_id="16505550177")
    assert post_meta(service, "whatsapp", body, channel.secret).status_code == 200
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    close_window(service, conv.id)
    url = f"/api/conversations/{conv.id}/messages"

    refused = tenant.api.post(url, json={"content": "Still there?"})
    note = tenant.api.post(url, json={"content": "Called them instead", "private": True})
    template = tenant.api.post(url, json=order_update())

    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "REPLY_WINDOW_CLOSED"
    assert (note.status_code, template.status_code) == (201, 201), template.text
    shown = tenant.api.get(f"/api/conversations/{conv.id}").json()
    assert when(shown["reply_window_expires_at"]) < when(shown["updated_at"])
    messages = tenant.api.get(url).json()["data"]
    assert [(m["direction"], m["private"], m["content_type"]) for m in messages] == [
        ("inbound", False, "text"),
        ("outbound", True, "text"),
        ("outbound", False, "template"),
    ]
    assert sent_to_platform(platform, "16505550177")["type"] == "template"


def test_sms_has_no_window_and_a_new_number_becomes_a_contact(service, tenant):
    channel = sms_channel(tenant)
    r = start(tenant.api, channel_id=channel.id, to="+1 415 555 0163", message={"content": "Hi"})

    assert r.status_code == 201, r.text
    assert r.json()["conversation"]["reply_window_expires_at"] is None
    [identity] = rows(
        service,
        ContactIdentity,
        col(ContactIdentity.organization_id) == tenant.org_id,
        col(ContactIdentity.kind) == "sms",
    )
    assert identity.external_id == "+14155550163"


def test_a_repeated_start_with_the_same_key_answers_the_first(service, tenant):
    channel = sms_channel(tenant)
    body = {"channel_id": channel.id, "to": "+14155550190", "message": {"content": "Hello"}}
    headers = {"Idempotency-Key": "start-1"}

    first = tenant.api.post("/api/conversations", json=body, headers=headers)
    again = tenant.api.post("/api/conversations", json=body, headers=headers)
    other = tenant.api.post(
        "/api/conversations", json={**body, "message": {"content": "Bye"}}, headers=headers
    )

    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    assert again.json()["conversation"]["id"] == first.json()["conversation"]["id"]
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(rows(service, Conversation, col(Conversation.channel_id) == channel.id)) == 1


def test_another_organizations_channel_or_contact_is_not_found(service, tenant, other_tenant):
    theirs = sms_channel(other_tenant)
    ours = sms_channel(tenant)
    their_contact = other_tenant.conversation().contact_id
    message = {"content": "Hi"}

    wrong_channel = start(tenant.api, channel_id=theirs.id, to="+14155550111", message=message)
    wrong_contact = start(tenant.api, channel_id=ours.id, contact_id=their_contact,
                          message=message)

    assert wrong_channel.status_code == 404, wrong_channel.text
    assert wrong_contact.status_code == 404, wrong_contact.text


def test_bad_requests_are_refused_with_the_reason(service, tenant):
    channel = sms_channel(tenant)

    def refused(**body) -> str:
        r = start(tenant.api, **body)
        assert r.status_code == 422, r.text
        return str(r.json()["error"]["message"])

    assert "phone number" in refused(channel_id=channel.id, to="call me", message={"content": "x"})
    assert "either contact_id or to" in refused(channel_id=channel.id, message={"content": "x"})
    assert "not a note" in refused(
        channel_id=channel.id, to="+14155550112", message={"content": "x", "private": True}
    )
    assert "content" in refused(channel_id=channel.id, to="+14155550112", message={})


def test_the_window_a_customer_opened_stays_open_in_a_new_conversation(
    service, tenant, platform
):
    channel = whatsapp_channel(tenant)
    wa_id = f"1650{unique_digits(7)}"
    body = whatsapp_text(channel, f"wamid.again-{wa_id}", "Thanks, all good", wa_id=wa_id)
    assert post_meta(service, "whatsapp", body, channel.secret).status_code == 200
    [closed] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    assert tenant.api.patch(
        f"/api/conversations/{closed.id}", json={"status": "closed"}
    ).status_code == 200

    r = start(
        tenant.api,
        channel_id=channel.id,
        contact_id=closed.contact_id,
        message={"content": "One more thing about your order"},
    )

    assert r.status_code == 201, r.text
    conversation = r.json()["conversation"]
    assert conversation["id"] != closed.id
    window = when(conversation["reply_window_expires_at"])
    assert (window - when(conversation["created_at"])).total_seconds() > 23 * 3600
    assert sent_to_platform(platform, wa_id)["text"] == {
        "body": "One more thing about your order"
    }


def test_a_contact_with_no_one_to_send_to_on_the_channel_is_refused(service, tenant):
    contact = tenant.api.post("/api/contacts", json={"name": "Walk-in"}).json()
    no_phone = sms_channel(tenant)
    other = instagram_channel(tenant)

    for channel, what in ((no_phone, "sms identity or phone number"),
                          (other, "instagram identity")):
        r = start(tenant.api, channel_id=channel.id, contact_id=contact["id"],
                  message={"content": "Hello"})
        assert r.status_code == 422, r.text
        assert what in r.json()["error"]["message"]
        assert rows(service, Conversation, col(Conversation.channel_id) == channel.id) == []
