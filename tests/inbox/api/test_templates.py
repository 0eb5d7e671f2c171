"""WhatsApp message templates: read from the Business Account page by page, listed with
what each needs, kept current by status webhooks, and validated when a message asks
for one."""

from __future__ import annotations

from tests.inbox.platforms import (
    post_meta,
    sms_channel,
    wait_for,
    whatsapp_body,
    whatsapp_text,
)
from tests.inbox.templates_support import (
    ORDER_UPDATE,
    TEMPLATES,
    WELCOME,
    order_update,
    sync,
    template_channel,
)

DOC_BUSINESS_ACCOUNT = b"102290129340398"


def listed(tenant, channel_id: int, **params) -> dict:
    r = tenant.api.get(f"/api/channels/{channel_id}/templates", params=params)
    assert r.status_code == 200, r.text
    return {(t["name"], t["language"]): t for t in r.json()["data"]}


def written_in(service, tenant, channel) -> int:
    body = whatsapp_text(channel, f"wamid.tpl-{channel.id}", "Hello?", wa_id="16505550199")
    assert post_meta(service, "whatsapp", body, channel.secret).status_code == 200
    [conv] = tenant.api.get("/api/conversations", params={"channel_id": channel.id}).json()["data"]
    return int(conv["id"])


def test_templates_are_read_page_by_page_and_listed_with_what_they_need(
    service, tenant, platform
):
    platform.reset()
    channel, account = template_channel(tenant, platform)

    reads = [r for r in platform.requests if r.path.endswith(f"/{account}/message_templates")]
    assert len(reads) == 3  # five templates, two a page
    assert {r.headers["authorization"] for r in reads} == {
        f"Bearer {channel.settings['access_token']}"
    }
    templates = listed(tenant, channel.id)
    assert sorted(templates) == sorted((t["name"], t["language"]) for t in TEMPLATES)
    order = templates[("order_update", "en_US")]
    assert (order["category"], order["status"]) == ("UTILITY", "APPROVED")
    assert order["parameters"] == {
        "header": {"format": "text", "count": 1, "named": False, "names": []},
        "body": {"count": 2, "named": False, "names": []},
        "buttons": [{"index": 0, "type": "url", "count": 1}],
    }
    assert templates[("welcome", "en_US")]["parameters"]["body"] == {
        "count": 2,
        "named": True,
        "names": ["first_name", "shop"],
    }
    assert templates[("promo", "en_US")]["status"] == "REJECTED"
    assert list(listed(tenant, channel.id, status="approved")) == [
        ("hello_world", "en_US"),
        ("order_update", "en_US"),
        ("welcome", "en_US"),
    ]

    # The account no longer lists one, and another changed: a sync follows it.
    platform.templates(account, [ORDER_UPDATE, {**WELCOME, "status": "PAUSED"}])
    result = sync(service, channel)
    assert (result.templates, result.added, result.removed) == (2, 0, 3)
    assert {k: t["status"] for k, t in listed(tenant, channel.id).items()} == {
        ("order_update", "en_US"): "APPROVED",
        ("welcome", "en_US"): "PAUSED",
    }


def test_a_template_status_webhook_changes_that_templates_status(service, tenant, platform):
    channel, account = template_channel(tenant, platform)
    body = (
        whatsapp_body(channel, "message_template_status_update.json")
        .replace(DOC_BUSINESS_ACCOUNT, account.encode())
        .replace(b"1689556908129832", b"1005")  # order_update in Spanish, PENDING
    )

    r = post_meta(service, "whatsapp", body, channel.secret)

    assert r.status_code == 200, r.text
    assert r.json()["updated"] == 1
    assert listed(tenant, channel.id)[("order_update", "es")]["status"] == "APPROVED"


def test_a_template_that_does_not_fit_is_refused_naming_the_problem(service, tenant, platform):
    channel, _ = template_channel(tenant, platform)
    conv = written_in(service, tenant, channel)
    url = f"/api/conversations/{conv}/messages"

    def refused(message: dict) -> tuple[str, str]:
        r = tenant.api.post(url, json=message)
        assert r.status_code == 422, r.text
        [field] = r.json()["error"]["details"]["fields"]
        return field["field"], field["message"]

    unknown = {"template": {"name": "nope", "language": "en_US"}}
    assert refused(unknown)[0] == "template.name"
    assert "no template 'nope' in language 'en_US'" in refused(unknown)[1]
    assert refused({"template": {"name": "promo", "language": "en_US"}}) == (
        "template.name",
        "template 'promo' (en_US) is REJECTED; only APPROVED templates can be sent",
    )
    assert refused({"template": {"name": "order_update", "language": "es"}})[1].endswith(
        "is PENDING; only APPROVED templates can be sent"
    )
    assert refused(order_update(body=["Sam"])) == (
        "template.parameters.body",
        "the body takes 2 parameters; 1 given (template 'order_update')",
    )
    assert refused(order_update(buttons=[])) == (
        "template.parameters.buttons",
        "the buttons take 1 parameters; 0 given (template 'order_update')",
    )
    assert refused(order_update(header=[])) == (
        "template.parameters.header",
        "the header takes 1 parameters; 0 given (template 'order_update')",
    )
    named = {"template": {"name": "welcome", "language": "en_US",
                          "parameters": {"body": {"first_name": "Sam"}}}}
    assert refused(named) == (
        "template.parameters.body",
        "the body needs shop (template 'welcome')",
    )
    positional = {"template": {"name": "welcome", "language": "en_US",
                               "parameters": {"body": ["Sam", "Acme"]}}}
    assert refused(positional)[1].startswith("the body takes named parameters (first_name, shop)")
    r = tenant.api.post(url, json={**order_update(), "content": "and text"})
    assert r.status_code == 422
    assert "a template goes alone" in r.json()["error"]["message"]
    # Nothing was queued by any of them.
    messages = tenant.api.get(f"/api/conversations/{conv}/messages").json()["data"]
    assert [m["direction"] for m in messages] == ["inbound"]


def test_templates_are_for_whatsapp_channels_only(service, tenant):
    sms = sms_channel(tenant)
    assert listed(tenant, sms.id) == {}
    r = tenant.api.post(
        "/api/conversations",
        json={"channel_id": sms.id, "to": "+14155550123", "message": order_update()},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"] == (
        "template: templates are sent on WhatsApp channels, not sms"
    )


def test_another_organizations_templates_are_not_found(service, tenant, other_tenant, platform):
    channel, _ = template_channel(tenant, platform, [ORDER_UPDATE])
    r = other_tenant.api.get(f"/api/channels/{channel.id}/templates")
    assert r.status_code == 404


def status_webhook(channel, account: str, event: str, template_id: str) -> bytes:
    return (
        whatsapp_body(channel, "message_template_status_update.json")
        .replace(DOC_BUSINESS_ACCOUNT, account.encode())
        .replace(b"1689556908129832", template_id.encode())
        .replace(b'"APPROVED"', f'"{event}"'.encode())
    )


def test_a_flagged_template_stays_approved_and_a_reinstated_one_is_approved_again(
    service, tenant, platform
):
    channel, account = template_channel(tenant, platform)

    for event, template_id in [("PAUSED", "1002"), ("FLAGGED", "1001"), ("LOCKED", "1003")]:
        r = post_meta(service, "whatsapp", status_webhook(channel, account, event, template_id),
                      channel.secret)
        assert r.status_code == 200, r.text
    statuses = {name: t["status"] for (name, lang), t in listed(tenant, channel.id).items()
                if lang == "en_US"}
    assert (statuses["welcome"], statuses["order_update"], statuses["hello_world"]) == (
        "PAUSED", "APPROVED", "APPROVED"
    )

    for event in ("REINSTATED", "PAUSED", "UNARCHIVED"):
        post_meta(service, "whatsapp", status_webhook(channel, account, event, "1002"),
                  channel.secret)
    assert listed(tenant, channel.id)[("welcome", "en_US")]["status"] == "APPROVED"


def test_a_status_webhook_naming_a_template_never_synced_has_the_list_read_again(
    service, tenant, platform
):
    channel, account = template_channel(tenant, platform, [ORDER_UPDATE])
    created = {**WELCOME, "id": "2002"}
    platform.templates(account, [ORDER_UPDATE, created])

    r = post_meta(service, "whatsapp", status_webhook(channel, account, "APPROVED", "2002"),
                  channel.secret)

    assert r.status_code == 200, r.text
    templates = wait_for(
        lambda: ("welcome", "en_US") in (t := listed(tenant, channel.id)) and t,
        what="the template list read again",
    )
    assert templates[("welcome", "en_US")]["status"] == "APPROVED"
