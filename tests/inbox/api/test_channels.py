"""Channels: per-kind settings, write-only secrets, routing keys, and safe deletion."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from inbox.models import Channel
from inbox.services.channel_secrets import ChannelSecrets

# The fields each kind requires, and which of them are secrets.
REQUIRED = {
    "whatsapp": ["phone_number_id", "access_token", "app_secret", "verify_token"],
    "instagram": ["account_id", "access_token", "app_secret", "verify_token"],
    "sms": ["phone_number", "account_sid", "auth_token"],
}
SECRETS = {
    "whatsapp": ["access_token", "app_secret", "verify_token"],
    "instagram": ["access_token", "app_secret", "verify_token"],
    "sms": ["auth_token"],
}
ROUTING_FIELD = {"whatsapp": "phone_number_id", "instagram": "account_id", "sms": "phone_number"}


def digits(n: int) -> str:
    return str(uuid.uuid4().int)[:n]


def secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


def settings_for(kind: str) -> dict[str, str]:
    """Valid settings with a routing key and secrets no other test uses."""
    if kind == "whatsapp":
        return {"phone_number_id": digits(15), "access_token": secret("wa-access"),
                "app_secret": secret("wa-app"), "verify_token": secret("wa-verify")}
    if kind == "instagram":
        return {"account_id": digits(17), "access_token": secret("ig-access"),
                "app_secret": secret("ig-app"), "verify_token": secret("ig-verify")}
    if kind == "sms":
        return {"phone_number": "+1555" + digits(7),
                "account_sid": "AC" + uuid.uuid4().hex, "auth_token": secret("sms-auth")}
    return {}


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    return body["error"]


def fields_of(error: dict[str, Any]) -> list[str]:
    return [f["field"] for f in error["details"]["fields"]]


def assert_no_secrets(r: Any, settings: dict[str, str], kind: str) -> None:
    for name in SECRETS[kind]:
        if settings.get(name):
            assert settings[name] not in r.text, name


def stored_settings(service: Any, channel_id: int) -> dict[str, Any]:
    """The settings the service keeps, its secrets decrypted as it reads them."""

    async def load() -> dict[str, Any]:
        async with service.db.session() as session:
            channel = await session.get(Channel, channel_id)
            assert channel is not None
            return ChannelSecrets.from_settings(service.settings).decrypted(channel)

    return service.run(load())


def channel_ids(tenant: Any) -> list[int]:
    return [c["id"] for c in tenant.api.get("/api/channels").json()["data"]]


@pytest.mark.parametrize("kind", list(REQUIRED))
def test_a_channel_is_created_with_its_settings_and_secrets_are_never_shown(
    service, tenant, kind
):
    settings = settings_for(kind)
    created = tenant.api.post(
        "/api/channels", json={"kind": kind, "name": f"Our {kind}", "settings": settings}
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["kind"] == kind
    assert channel["name"] == f"Our {kind}"
    assert channel["is_active"] is True
    assert channel["organization_id"] == tenant.org_id
    assert channel["routing_key"] == settings[ROUTING_FIELD[kind]]
    public = {k: v for k, v in settings.items() if k not in SECRETS[kind]}
    assert channel["settings"] == public
    assert channel["configured_secrets"] == sorted(SECRETS[kind])

    responses = [
        created,
        tenant.api.get(f"/api/channels/{channel['id']}"),
        tenant.api.get("/api/channels"),
        tenant.api.patch(f"/api/channels/{channel['id']}", json={"name": "Renamed"}),
        tenant.api.patch(f"/api/channels/{channel['id']}", json={"settings": {}}),
    ]
    for r in responses:
        assert r.status_code in (200, 201), r.text
        assert_no_secrets(r, settings, kind)
    assert tenant.api.get(f"/api/channels/{channel['id']}").json()["configured_secrets"] == sorted(
        SECRETS[kind]
    )
    # Write-only, not dropped: the service keeps them to verify and send.
    assert stored_settings(service, channel["id"]) == {**settings, **stored_defaults(kind)}


def stored_defaults(kind: str) -> dict[str, Any]:
    return {"whatsapp": {"previous_app_secrets": []}, "instagram": {"previous_app_secrets": []},
            "sms": {"previous_auth_tokens": []}}.get(kind, {})


def test_a_generic_channel_needs_no_settings_and_has_no_routing_key(tenant):
    r = tenant.api.post("/api/channels", json={"kind": "generic", "name": "Web form"})
    assert r.status_code == 201, r.text
    assert r.json()["routing_key"] is None
    assert r.json()["settings"] == {}
    assert r.json()["configured_secrets"] == []


def test_an_sms_number_is_stored_in_e164_and_is_its_routing_key(tenant):
    settings = settings_for("sms")
    number = settings["phone_number"]
    spaced = f"{number[:2]} {number[2:5]}-{number[5:8]} {number[8:]}"
    r = tenant.api.post("/api/channels", json={"kind": "sms", "name": "SMS",
                                               "settings": {**settings, "phone_number": spaced}})
    assert r.status_code == 201, r.text
    assert r.json()["routing_key"] == number
    assert r.json()["settings"]["phone_number"] == number


@pytest.mark.parametrize("kind", list(REQUIRED))
def test_each_missing_setting_is_named(tenant, kind):
    for field in REQUIRED[kind]:
        settings = settings_for(kind)
        del settings[field]
        r = tenant.api.post("/api/channels", json={"kind": kind, "name": "X", "settings": settings})
        error = assert_error(r, 422, "VALIDATION_ERROR")
        assert fields_of(error) == [f"settings.{field}"]
        assert f"settings.{field}" in error["message"]
    assert channel_ids(tenant) == []


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("whatsapp", "phone_number_id", "not-digits"),
        ("instagram", "account_id", "12ab"),
        ("sms", "phone_number", "4155550123"),
        ("sms", "phone_number", "+1 415 CALL NOW"),
        ("sms", "account_sid", "AC123"),
        ("sms", "account_sid", "XX" + "0" * 32),
        ("whatsapp", "access_token", ""),
        ("whatsapp", "unexpected", "value"),
    ],
)
def test_an_invalid_setting_is_named(tenant, kind, field, value):
    settings = {**settings_for(kind), field: value}
    r = tenant.api.post("/api/channels", json={"kind": kind, "name": "X", "settings": settings})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert fields_of(error) == [f"settings.{field}"]
    assert_no_secrets(r, settings, kind)  # errors name fields, never echo values
    assert channel_ids(tenant) == []


def test_an_unknown_kind_is_a_validation_error(tenant):
    r = tenant.api.post("/api/channels", json={"kind": "telegram", "name": "X", "settings": {}})
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert fields_of(error) == ["kind"]
    assert channel_ids(tenant) == []


def test_a_routing_key_belongs_to_one_channel_even_across_organizations(tenant, other_tenant):
    settings = settings_for("whatsapp")
    body = {"kind": "whatsapp", "name": "First", "settings": settings}
    first = tenant.api.post("/api/channels", json=body)
    assert first.status_code == 201

    again = {**body, "settings": {**settings_for("whatsapp"),
                                  "phone_number_id": settings["phone_number_id"]}}
    answers = []
    for api in (tenant.api, other_tenant.api):
        r = api.post("/api/channels", json=again)
        error = assert_error(r, 409, "CONFLICT")
        assert error["details"]["fields"][0]["field"] == "settings.phone_number_id"
        # Neither the key nor anything of the channel that holds it.
        assert settings["phone_number_id"] not in r.text
        answers.append(r.json())
        assert_no_secrets(r, again["settings"], "whatsapp")
        assert_no_secrets(r, settings, "whatsapp")
    assert channel_ids(tenant) == [first.json()["id"]]
    assert channel_ids(other_tenant) == []
    # Whose channel it is does not show: the same answer in both organizations.
    assert answers[0] == answers[1]


def test_the_same_key_may_route_channels_of_different_kinds(tenant):
    number = digits(15)
    whatsapp = {**settings_for("whatsapp"), "phone_number_id": number}
    instagram = {**settings_for("instagram"), "account_id": number}
    assert tenant.api.post("/api/channels", json={"kind": "whatsapp", "name": "W",
                                                  "settings": whatsapp}).status_code == 201
    assert tenant.api.post("/api/channels", json={"kind": "instagram", "name": "I",
                                                  "settings": instagram}).status_code == 201


def test_patch_merges_settings_and_keeps_omitted_secrets(service, tenant):
    settings = settings_for("whatsapp")
    channel = tenant.api.post(
        "/api/channels", json={"kind": "whatsapp", "name": "W", "settings": settings}
    ).json()
    new_token = secret("wa-access-rotated")
    new_number = digits(15)

    r = tenant.api.patch(f"/api/channels/{channel['id']}", json={
        "settings": {"access_token": new_token, "phone_number_id": new_number},
    })
    assert r.status_code == 200, r.text
    assert new_token not in r.text
    assert r.json()["routing_key"] == new_number
    assert r.json()["settings"] == {"phone_number_id": new_number}
    assert r.json()["configured_secrets"] == sorted(SECRETS["whatsapp"])
    assert r.json()["name"] == "W"
    stored = stored_settings(service, channel["id"])
    assert stored["access_token"] == new_token
    assert stored["app_secret"] == settings["app_secret"]
    assert stored["verify_token"] == settings["verify_token"]


def test_patch_without_settings_leaves_them_alone(service, tenant):
    settings = settings_for("sms")
    channel = tenant.api.post(
        "/api/channels", json={"kind": "sms", "name": "S", "settings": settings}
    ).json()
    before = stored_settings(service, channel["id"])
    r = tenant.api.patch(f"/api/channels/{channel['id']}",
                         json={"name": "Support line", "is_active": False})
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["is_active"]) == ("Support line", False)
    assert r.json()["routing_key"] == settings["phone_number"]
    assert stored_settings(service, channel["id"]) == before


def test_patch_validates_the_merged_settings(service, tenant):
    settings = settings_for("sms")
    channel = tenant.api.post(
        "/api/channels", json={"kind": "sms", "name": "S", "settings": settings}
    ).json()
    before = stored_settings(service, channel["id"])
    for bad, field in (({"account_sid": "nope"}, "account_sid"),
                       ({"auth_token": None}, "auth_token")):
        r = tenant.api.patch(f"/api/channels/{channel['id']}", json={"settings": bad})
        error = assert_error(r, 422, "VALIDATION_ERROR")
        assert fields_of(error) == [f"settings.{field}"]
    assert stored_settings(service, channel["id"]) == before


def test_patch_onto_a_taken_routing_key_is_a_conflict(service, tenant, other_tenant):
    taken = settings_for("whatsapp")
    other_tenant.api.post("/api/channels",
                          json={"kind": "whatsapp", "name": "Theirs", "settings": taken})
    mine = tenant.api.post("/api/channels", json={"kind": "whatsapp", "name": "Mine",
                                                  "settings": settings_for("whatsapp")}).json()
    r = tenant.api.patch(f"/api/channels/{mine['id']}",
                         json={"settings": {"phone_number_id": taken["phone_number_id"]}})
    assert_error(r, 409, "CONFLICT")
    assert tenant.api.get(f"/api/channels/{mine['id']}").json() == mine


def test_a_channel_without_conversations_can_be_deleted(tenant):
    channel = tenant.api.post("/api/channels", json={"kind": "generic", "name": "G"}).json()
    assert tenant.api.delete(f"/api/channels/{channel['id']}").status_code == 204
    assert_error(tenant.api.get(f"/api/channels/{channel['id']}"), 404, "RESOURCE_NOT_FOUND")
    assert channel_ids(tenant) == []


def test_a_channel_with_conversations_cannot_be_deleted(tenant):
    conversation = tenant.conversation(messages=2)
    [listed] = tenant.api.get("/api/conversations").json()["data"]
    assert listed["id"] == conversation.id
    channel_id = listed["channel_id"]

    error = assert_error(tenant.api.delete(f"/api/channels/{channel_id}"), 409, "CONFLICT")
    assert "deactivate" in error["message"]
    assert channel_ids(tenant) == [channel_id]
    assert tenant.api.get(f"/api/conversations/{conversation.id}").status_code == 200
    # What the error suggests works.
    r = tenant.api.patch(f"/api/channels/{channel_id}", json={"is_active": False})
    assert r.status_code == 200
    assert r.json()["is_active"] is False
