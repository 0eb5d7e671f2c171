"""Creating a user or a channel that clashes with another organization's answers exactly
as a clash within the organization does, and names nothing of either."""

from __future__ import annotations

from typing import Any

import pytest

from tests.connectors.helpers import TWILIO_ACCOUNT_SID
from tests.inbox.platforms import unique_digits

PASSWORD = "a-long-enough-password"


def channel_settings(kind: str) -> dict[str, Any]:
    n = unique_digits(9)
    secrets = {"access_token": f"token-{n}", "app_secret": f"secret-{n}",
               "verify_token": f"verify-{n}"}
    if kind == "whatsapp":
        return {"phone_number_id": f"106{n}", **secrets}
    if kind == "instagram":
        return {"account_id": f"178{n}", **secrets}
    return {"phone_number": f"+1415{n[-7:]}", "account_sid": TWILIO_ACCOUNT_SID,
            "auth_token": f"t-{n}"}


def test_an_email_in_use_answers_the_same_in_any_organization(tenant, other_tenant):
    email = f"taken{unique_digits(6)}@clash.example"
    assert tenant.api.post("/api/users", json={"email": email, "password": PASSWORD}
                           ).status_code == 201

    mine = tenant.api.post("/api/users", json={"email": email.upper(), "password": PASSWORD})
    theirs = other_tenant.api.post("/api/users", json={"email": email, "password": PASSWORD})

    assert mine.status_code == theirs.status_code == 409
    assert mine.json() == theirs.json() == {"error": {
        "code": "CONFLICT",
        "message": "email: is already in use",
        "details": {"fields": [{"field": "email", "message": "is already in use",
                                "type": "conflict"}]},
    }}
    assert email not in theirs.text.lower()
    assert [u["email"] for u in other_tenant.api.get("/api/users").json()["data"]].count(
        email) == 0


@pytest.mark.parametrize(
    ("kind", "field"),
    [("whatsapp", "phone_number_id"), ("instagram", "account_id"), ("sms", "phone_number")],
)
def test_a_routing_key_in_use_answers_the_same_in_any_organization(
    tenant, other_tenant, kind, field
):
    settings = channel_settings(kind)
    first = tenant.api.post("/api/channels",
                            json={"kind": kind, "name": "First line", "settings": settings})
    assert first.status_code == 201, first.text
    again = {"kind": kind, "name": "Again", "settings": {**channel_settings(kind),
                                                         field: settings[field]}}

    mine = tenant.api.post("/api/channels", json=again)
    theirs = other_tenant.api.post("/api/channels", json=again)
    # Moving a channel of one's own onto the key answers alike too.
    own = other_tenant.api.post("/api/channels", json={
        "kind": kind, "name": "Own", "settings": channel_settings(kind)}).json()
    moved = other_tenant.api.patch(f"/api/channels/{own['id']}",
                                   json={"settings": {field: settings[field]}})

    assert mine.status_code == theirs.status_code == moved.status_code == 409
    assert mine.json() == theirs.json() == moved.json()
    error = theirs.json()["error"]
    assert error["details"]["fields"][0]["field"] == f"settings.{field}"
    for r in (mine, theirs, moved):
        # Neither the key, nor the name or id of the channel that holds it.
        assert settings[field] not in r.text and "First line" not in r.text
        assert str(first.json()["id"]) not in r.text
