"""Contacts: create, read, update, delete, search, filter and sort, per organization."""

from __future__ import annotations

from typing import Any

from sqlmodel import func, select

from inbox.models import ContactIdentity, Conversation, Lead, Message, utcnow
from tests.inbox.platforms import events_of

SMS_SETTINGS = {
    "phone_number": "+15550009999",
    "account_sid": "AC" + "0" * 32,
    "auth_token": "sms-secret",
}




def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["name"] for c in response.json()["data"]]


def talk_on(service: Any, org_id: int, contact_id: int, channel: dict[str, Any],
            external_id: str, messages: int = 1) -> int:
    """The contact writes in on a channel: its identity, a conversation and messages."""

    async def seed() -> int:
        async with service.db.session() as session:
            session.add(ContactIdentity(organization_id=org_id, contact_id=contact_id,
                                        kind=channel["kind"], external_id=external_id))
            conv = Conversation(organization_id=org_id, contact_id=contact_id,
                                channel_id=channel["id"], unread_count=messages,
                                last_message_at=utcnow(), last_message_preview="hello")
            session.add(conv)
            await session.flush()
            for i in range(messages):
                session.add(Message(organization_id=org_id, conversation_id=conv.id,
                                    channel_id=channel["id"], direction="inbound",
                                    sender_contact_id=contact_id, content=f"hello {i}",
                                    status="received", external_id=f"{external_id}-{i}"))
            await session.commit()
            assert conv.id is not None
            return conv.id

    return service.run(seed())


def test_create_normalizes_and_records_contact_created(service, tenant):
    r = tenant.api.post(
        "/api/contacts",
        json={"name": "Ada Lovelace", "email": "Ada@Example.COM", "phone": "+44 20 7946 0958",
              "company": "Analytical", "position": "CTO", "tags": ["vip", "beta", "vip"],
              "custom_fields": {"plan": "gold"}, "notes": "met at the fair"},
    )
    assert r.status_code == 201, r.text
    contact = r.json()
    assert contact["phone"] == "+442079460958"
    assert contact["email"] == "ada@example.com"
    assert contact["tags"] == ["vip", "beta"]
    assert contact["status"] == "lead"
    assert contact["custom_fields"] == {"plan": "gold"}
    assert contact["created_at"].endswith("Z") and contact["updated_at"].endswith("Z")
    got = tenant.api.get(f"/api/contacts/{contact['id']}").json()
    assert {k: got[k] for k in contact} == contact
    assert [e.data for e in events_of(service, tenant.org_id, "contact.created")] == [contact]


def test_invalid_phone_and_email_are_named_in_the_error(tenant):
    r = tenant.api.post(
        "/api/contacts", json={"name": "X", "phone": "call me maybe", "email": "nope"}
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert {f["field"] for f in error["details"]["fields"]} == {"phone", "email"}
    impossible = tenant.api.post("/api/contacts", json={"phone": "+1 2"})
    assert impossible.status_code == 422
    assert impossible.json()["error"]["details"]["fields"][0]["field"] == "phone"
    assert tenant.api.get("/api/contacts").json()["data"] == []


def test_invalid_status_and_tags_are_rejected(tenant):
    for body, field in [
        ({"status": "friend"}, "status"),
        ({"tags": ["a,b"]}, "tags.0"),
        ({"tags": [""]}, "tags.0"),
        ({"nickname": "x"}, "nickname"),
    ]:
        r = tenant.api.post("/api/contacts", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["details"]["fields"][0]["field"] == field


def test_text_with_a_nul_character_is_invalid_on_every_database(tenant):
    for body, field in [
        ({"name": "a\x00b"}, "name"),
        ({"tags": ["ok", "n\x00"]}, "tags.1"),
        ({"custom_fields": {"plan": {"tier\x00": 1}}}, "custom_fields.plan.tier\x00"),
    ]:
        r = tenant.api.post("/api/contacts", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["details"]["fields"][0]["field"] == field
    for params in ({"search": "a\x00"}, {"tags": "\x00"}):
        r = tenant.api.get("/api/contacts", params=params)
        assert r.status_code == 422, params
        assert r.json()["error"]["details"]["fields"][0]["field"] == next(iter(params))


def test_patch_changes_only_the_given_fields_and_records_contact_updated(service, tenant):
    contact = tenant.api.post(
        "/api/contacts", json={"name": "Bo", "company": "Acme", "tags": ["a"]}
    ).json()
    r = tenant.api.patch(
        f"/api/contacts/{contact['id']}", json={"phone": "+1 (415) 555-0100", "tags": ["b", "b"]}
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["phone"] == "+14155550100"
    assert updated["tags"] == ["b"]
    assert updated["company"] == "Acme"
    assert updated["name"] == "Bo"
    assert updated["updated_at"] > contact["updated_at"]
    [event] = events_of(service, tenant.org_id, "contact.updated")
    assert event.data == updated


def test_patch_with_null_clears_a_text_field_but_not_the_tags(tenant):
    contact = tenant.api.post(
        "/api/contacts", json={"name": "Cy", "company": "Acme", "tags": ["x"]}
    ).json()
    r = tenant.api.patch(f"/api/contacts/{contact['id']}", json={"company": None, "tags": None})
    assert r.status_code == 200
    assert r.json()["company"] is None
    assert r.json()["tags"] == ["x"]


def test_an_unchanged_patch_records_no_event(service, tenant):
    contact = tenant.api.post("/api/contacts", json={"name": "Di"}).json()
    r = tenant.api.patch(f"/api/contacts/{contact['id']}", json={"name": "Di"})
    assert r.json()["updated_at"] == contact["updated_at"]
    assert events_of(service, tenant.org_id, "contact.updated") == []


def test_put_replaces_the_whole_contact(service, tenant):
    contact = tenant.api.post(
        "/api/contacts",
        json={"name": "Ed", "company": "Acme", "tags": ["t"], "status": "customer"},
    ).json()
    r = tenant.api.put(f"/api/contacts/{contact['id']}", json={"email": "ed@example.com"})
    assert r.status_code == 200, r.text
    replaced = r.json()
    assert replaced["email"] == "ed@example.com"
    assert replaced["name"] is None and replaced["company"] is None
    assert replaced["tags"] == [] and replaced["status"] == "lead"
    [event] = events_of(service, tenant.org_id, "contact.updated")
    assert event.data == replaced


def test_invalid_updates_change_nothing(tenant):
    contact = tenant.api.post("/api/contacts", json={"name": "Flo", "phone": "+14155550101"}).json()
    r = tenant.api.patch(f"/api/contacts/{contact['id']}", json={"phone": "12"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "phone"
    r = tenant.api.put(f"/api/contacts/{contact['id']}", json={"email": "@"})
    assert r.status_code == 422
    assert tenant.api.get(f"/api/contacts/{contact['id']}").json()["phone"] == "+14155550101"


def test_search_covers_name_email_phone_and_company(tenant):
    for body in [
        {"name": "Grace Hopper", "email": "grace@navy.example"},
        {"name": "Alan Turing", "company": "Bletchley Park"},
        {"name": "Linus", "phone": "+358 40 1234567"},
    ]:
        assert tenant.api.post("/api/contacts", json=body).status_code == 201

    def search(text: str) -> list[str]:
        return sorted(names(tenant.api.get("/api/contacts", params={"search": text})))

    assert search("hopper") == ["Grace Hopper"]
    assert search("NAVY.example") == ["Grace Hopper"]
    assert search("bletchley") == ["Alan Turing"]
    assert search("+35840") == ["Linus"]
    assert search("n") == ["Alan Turing", "Grace Hopper", "Linus"]
    assert search("_") == []
    assert search("nobody") == []


def test_tags_filter_needs_every_listed_tag(tenant):
    for name, tags in [("A", ["vip", "beta"]), ("B", ["vip"]), ("C", ["beta"]), ("D", [])]:
        tenant.api.post("/api/contacts", json={"name": name, "tags": tags})

    def tagged(tags: str) -> list[str]:
        return sorted(names(tenant.api.get("/api/contacts", params={"tags": tags})))

    assert tagged("vip") == ["A", "B"]
    assert tagged("vip,beta") == ["A"]
    assert tagged(" beta , vip ") == ["A"]
    assert tagged("vip,gold") == []
    assert tagged("vi") == []


def test_status_filter_and_customers(tenant):
    for name, status in [("Lea", "lead"), ("Cus", "customer"), ("Act", "active"),
                         ("Arc", "archived"), ("Cu2", "customer")]:
        tenant.api.post("/api/contacts", json={"name": name, "status": status})
    assert names(tenant.api.get("/api/contacts", params={"status": "archived"})) == ["Arc"]
    customers = tenant.api.get("/api/customers", params={"sort": "name", "order": "asc"})
    assert names(customers) == ["Cu2", "Cus"]
    assert customers.json()["pagination"]["total"] == 2
    # /api/customers only ever lists customers, whatever status is asked for.
    assert names(tenant.api.get("/api/customers", params={"status": "lead"})) == ["Cu2", "Cus"]
    r = tenant.api.get("/api/contacts", params={"status": "friend"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "status"


def test_sort_and_order(tenant):
    for name, company in [("Bea", "Zeta"), ("Abe", "Mu"), ("Cal", "Alpha")]:
        tenant.api.post("/api/contacts", json={"name": name, "company": company})
    assert names(tenant.api.get("/api/contacts")) == ["Cal", "Abe", "Bea"]  # newest first
    assert names(tenant.api.get("/api/contacts", params={"order": "asc"})) == ["Bea", "Abe", "Cal"]
    assert names(tenant.api.get("/api/contacts", params={"sort": "name", "order": "asc"})) == [
        "Abe", "Bea", "Cal"
    ]
    assert names(tenant.api.get("/api/contacts", params={"sort": "company"})) == [
        "Bea", "Abe", "Cal"
    ]
    r = tenant.api.get("/api/contacts", params={"sort": "password"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "sort"


def test_pagination(tenant):
    for i in range(3):
        tenant.api.post("/api/contacts", json={"name": f"P{i}"})
    page = tenant.api.get(
        "/api/contacts", params={"limit": 2, "offset": 1, "sort": "name", "order": "asc"}
    ).json()
    assert [c["name"] for c in page["data"]] == ["P1", "P2"]
    assert page["pagination"] == {"total": 3, "limit": 2, "offset": 1, "has_more": False}


def test_detail_shows_identities_leads_and_conversations_across_channels(service, tenant):
    contact = tenant.api.post(
        "/api/contacts", json={"name": "Multi", "phone": "+14155550177"}
    ).json()
    sms = tenant.api.post(
        "/api/channels", json={"kind": "sms", "name": "SMS", "settings": SMS_SETTINGS}
    ).json()
    generic = tenant.api.post("/api/channels", json={"kind": "generic", "name": "Web"}).json()
    on_sms = talk_on(service, tenant.org_id, contact["id"], sms, "14155550177")
    on_web = talk_on(service, tenant.org_id, contact["id"], generic, "visitor-7", messages=2)
    lead = tenant.api.post("/api/leads", json={"name": "Multi", "contact_id": contact["id"]}).json()

    detail = tenant.api.get(f"/api/contacts/{contact['id']}").json()
    assert detail["name"] == "Multi"
    unnamed = {"profile_name": None, "former_names": [], "user_id": None, "replaced_at": None}
    assert detail["identities"] == [
        {"kind": "sms", "external_id": "14155550177", **unnamed},
        {"kind": "generic", "external_id": "visitor-7", **unnamed},
    ]
    assert detail["leads"] == [lead]
    conversations = {c["id"]: c for c in detail["conversations"]}
    assert set(conversations) == {on_sms, on_web}
    assert conversations[on_sms]["channel_kind"] == "sms"
    assert conversations[on_sms]["channel_id"] == sms["id"]
    assert conversations[on_web]["channel_kind"] == "generic"
    assert conversations[on_web]["unread_count"] == 2
    assert conversations[on_web]["status"] == "open"
    # Other contacts' conversations are not listed.
    tenant.conversation()
    again = tenant.api.get(f"/api/contacts/{contact['id']}").json()
    assert len(again["conversations"]) == 2


def test_delete_removes_conversations_and_messages_but_keeps_leads(service, tenant):
    contact = tenant.api.post("/api/contacts", json={"name": "Gone"}).json()
    channel = tenant.api.post("/api/channels", json={"kind": "generic", "name": "Web"}).json()
    conv_id = talk_on(service, tenant.org_id, contact["id"], channel, "gone-1", messages=3)
    lead = tenant.api.post("/api/leads", json={"name": "Gone", "contact_id": contact["id"]}).json()
    kept = tenant.conversation(messages=2)

    assert tenant.api.delete(f"/api/contacts/{contact['id']}").status_code == 204
    r = tenant.api.get(f"/api/contacts/{contact['id']}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert tenant.api.get(f"/api/conversations/{conv_id}").status_code == 404
    assert tenant.api.get(f"/api/conversations/{conv_id}/messages").status_code == 404
    assert tenant.api.get(f"/api/leads/{lead['id']}").json()["contact_id"] is None
    assert [c["id"] for c in tenant.api.get("/api/conversations").json()["data"]] == [kept.id]

    async def remaining() -> tuple[int, int, int]:
        async with service.db.session() as session:
            messages = await session.scalar(
                select(func.count()).select_from(Message).where(Message.conversation_id == conv_id)
            )
            identities = await session.scalar(
                select(func.count()).select_from(ContactIdentity)
                .where(ContactIdentity.contact_id == contact["id"])
            )
            leads = await session.scalar(
                select(func.count()).select_from(Lead).where(Lead.organization_id == tenant.org_id)
            )
            return int(messages or 0), int(identities or 0), int(leads or 0)

    assert service.run(remaining()) == (0, 0, 1)
    assert [e.data for e in events_of(service, tenant.org_id, "contact.deleted")] == [
        {"id": contact["id"]}
    ]
    assert tenant.api.delete(f"/api/contacts/{contact['id']}").status_code == 404


def test_contacts_of_another_organization_are_invisible(tenant, other_tenant):
    theirs = other_tenant.api.post(
        "/api/contacts", json={"name": "Theirs", "status": "customer"}
    ).json()
    path = f"/api/contacts/{theirs['id']}"
    assert tenant.api.get(path).status_code == 404
    assert tenant.api.patch(path, json={"name": "Mine"}).status_code == 404
    assert tenant.api.put(path, json={"name": "Mine"}).status_code == 404
    assert tenant.api.delete(path).status_code == 404
    assert tenant.api.get("/api/contacts").json()["data"] == []
    assert tenant.api.get("/api/customers").json()["data"] == []
    assert other_tenant.api.get(path).json()["name"] == "Theirs"
