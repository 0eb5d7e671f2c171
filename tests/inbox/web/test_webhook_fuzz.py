"""Whatever a signed delivery carries, a webhook route answers with a clear status, never 500.

The bodies are properly signed and routed to a real channel, so they get past
the signature check and reach the parser and the ingest with arbitrary shapes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inbox.platforms import post_meta, post_twilio, sms_channel, whatsapp_channel

# A refusal or a no-op, never a crash: 500 (a bug) and 503 (an outage) must not appear.
CLEAR = {200, 400, 404, 413, 415, 422}
# A signed Meta delivery is acknowledged whatever it holds; only a body that is no
# JSON object is refused. Never 401 (it is signed), 404 or 5xx.
META_CLEAR = {200, 400}

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
message_fields = st.fixed_dictionaries(
    {},
    optional={
        "from": values | st.text(alphabet="0123456789", min_size=1, max_size=20),
        "id": values | st.text(min_size=1, max_size=40),
        "timestamp": values | st.integers(min_value=-(2**63), max_value=2**63).map(str),
        "type": st.sampled_from(["text", "image", "location", "reaction", "interactive", "nope"])
        | values,
        "text": values,
        "image": values,
        "location": values,
        "reaction": values,
        "interactive": values,
    },
)


def expected(body: bytes) -> int:
    try:
        return 200 if isinstance(orjson.loads(body), dict) else 400
    except orjson.JSONDecodeError:
        return 400


def whatsapp_delivery(phone_number_id: str, value_extra: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
        **value_extra,
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


def test_arbitrary_whatsapp_messages_never_crash_the_route(service, tenant):
    channel = whatsapp_channel(tenant)

    @FUZZ
    @given(
        messages=st.lists(message_fields, max_size=3) | values,
        contacts=values,
        statuses=values,
    )
    def check(messages: Any, contacts: Any, statuses: Any) -> None:
        body = whatsapp_delivery(
            channel.key, {"messages": messages, "contacts": contacts, "statuses": statuses}
        )
        r = post_meta(service, "whatsapp", body, channel.secret)
        # A JSON object is always acknowledged; 400 only for what is no JSON (infinity,
        # integers beyond 64 bits).
        assert r.status_code == expected(body), r.text

    check()


def test_any_signed_json_object_is_acknowledged(service, tenant):
    channel = whatsapp_channel(tenant)

    @FUZZ
    @given(body=st.dictionaries(st.text(max_size=12), values, max_size=5)
           | st.fixed_dictionaries({"object": st.just("whatsapp_business_account"),
                                    "entry": values}))
    def check(body: Any) -> None:
        raw = json.dumps(body).encode()
        r = post_meta(service, "whatsapp", raw, channel.secret)
        assert r.status_code == expected(raw), r.text

    check()


def test_arbitrary_signed_bytes_never_crash_the_route(service, tenant):
    channel = whatsapp_channel(tenant)
    prefix = whatsapp_delivery(channel.key, {})

    @FUZZ
    @given(cut=st.integers(min_value=0, max_value=len(prefix)), tail=st.binary(max_size=64))
    def check(cut: int, tail: bytes) -> None:
        # A truncated delivery with garbage (invalid UTF-8 included) appended.
        body = prefix[:cut] + tail
        r = post_meta(service, "whatsapp", body, channel.secret)
        assert r.status_code in META_CLEAR, r.text

    check()


def test_arbitrary_twilio_forms_never_crash_the_route(service, tenant):
    channel = sms_channel(tenant)
    field_values = st.text(max_size=40) | st.integers().map(str)

    @FUZZ
    @given(
        extra=st.dictionaries(
            st.sampled_from(
                [
                    "MessageSid",
                    "From",
                    "Body",
                    "NumMedia",
                    "MediaUrl0",
                    "MediaContentType0",
                    "MessageStatus",
                    "SmsStatus",
                    "ErrorCode",
                    "AccountSid",
                ]
            )
            | st.text(min_size=1, max_size=10),
            field_values,
            max_size=6,
        ),
        path=st.sampled_from(["/webhooks/twilio/sms", "/webhooks/twilio/status"]),
    )
    def check(extra: dict[str, str], path: str) -> None:
        fields = {"To": channel.key, **extra}
        if path.endswith("status"):
            fields = {"From": channel.key, **extra}
        body = urlencode(fields).encode()
        r = post_twilio(service, path, body, channel.secret)
        assert r.status_code in CLEAR, r.text

    check()


def test_arbitrary_generic_messages_never_crash_the_route(service, tenant):
    key = tenant.api_key(scopes=("ingest",))
    http = service.client()

    @FUZZ
    @given(
        body=st.fixed_dictionaries(
            {},
            optional={
                "from": values | st.text(max_size=20),
                "content": values | st.text(max_size=50),
                "platform": st.sampled_from(["whatsapp", "sms", "instagram", "fax"]) | values,
                "name": values,
                "external_id": values | st.text(max_size=20),
            },
        )
        | values
    )
    def check(body: Any) -> None:
        r = http.post(
            "/webhooks/messages/incoming",
            content=json.dumps(body).encode(),
            headers={"X-Api-Key": key, "Content-Type": "application/json"},
        )
        assert r.status_code in CLEAR, r.text

    check()
