from __future__ import annotations

import json

import pytest

from connectors.errors import PayloadError
from connectors.leads import parse_lead
from connectors.types import LeadSubmission, WebhookRequest
from tests.connectors.helpers import payload

URL = "https://inbox.example.com/webhooks/leads/incoming?key=pk_live_x"


def post(body: bytes, content_type: str) -> WebhookRequest:
    return WebhookRequest(method="POST", url=URL, headers={"Content-Type": content_type}, body=body)


def test_json_lead() -> None:
    lead = parse_lead(post(payload("generic", "lead.json"), "application/json; charset=utf-8"))
    assert lead == LeadSubmission(
        name="Fox Mulder",
        email="fox.mulder@example.com",
        phone="+12025550143",
        company="FBI",
        message="Please call me back about pricing.",
        extra={"utm_source": "newsletter", "page": "/pricing"},
    )


def test_html_form_lead_with_aliases() -> None:
    lead = parse_lead(
        post(payload("generic", "lead_form.txt"), "application/x-www-form-urlencoded")
    )
    assert lead.name == "Dana Scully"
    assert lead.email == "dana@example.com"
    assert lead.phone == "+12025550199"
    assert lead.message == "Interested in the annual plan"
    assert lead.extra == {"utm_campaign": "spring"}


def test_national_phone_needs_a_region() -> None:
    body = json.dumps({"name": "A", "phone": "(202) 555-0143"}).encode()
    lead = parse_lead(post(body, "application/json"))
    assert lead.phone is None
    assert lead.extra["phone"] == "(202) 555-0143"
    assert parse_lead(post(body, "application/json"), default_region="US").phone == "+12025550143"


def test_empty_inputs_mean_not_given() -> None:
    body = b"name=&email=a%40example.com&phone=&company="
    lead = parse_lead(post(body, "application/x-www-form-urlencoded"))
    assert lead == LeadSubmission(name=None, email="a@example.com", phone=None)


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        (b'{"email": "not-an-email"}', "application/json", "email"),
        (b'{"company": "ACME"}', "application/json", "name"),
        (b'{"name": ["a"]}', "application/json", "name"),
        (b'{"name": "' + b"x" * 300 + b'"}', "application/json", "name"),
        (b'{"name": "A", "utm": "' + b"x" * 3000 + b'"}', "application/json", "utm"),
    ],
)
def test_invalid_leads_say_which_field(body: bytes, content_type: str, field: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_lead(post(body, content_type))
    assert field in info.value.details


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"name=A", "text/plain"),
        (b"name=A", ""),
        (b"--x\r\n", "multipart/form-data; boundary=x"),
        (b"[1, 2]", "application/json"),
        (b"{", "application/json"),
        (b"name=%ff", "application/x-www-form-urlencoded"),
        (
            json.dumps({f"f{i}": "v" for i in range(60)} | {"name": "A"}).encode(),
            "application/json",
        ),
    ],
)
def test_unreadable(body: bytes, content_type: str) -> None:
    with pytest.raises(PayloadError):
        parse_lead(post(body, content_type))
