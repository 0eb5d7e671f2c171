"""Every parser, fed garbage: it returns events or raises PayloadError, and
nothing else. Verifiers raise SignatureError and nothing else."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import PayloadError, SignatureError
from connectors.generic import GenericAdapter
from connectors.instagram import InstagramAdapter
from connectors.leads import parse_lead
from connectors.twilio import TwilioAdapter
from connectors.types import (
    Activity,
    ChannelHealth,
    Deletion,
    Echo,
    IdentityChange,
    InboundMessage,
    MessageEdit,
    Reaction,
    ReadReceipt,
    StatusUpdate,
    Unhandled,
    Unreadable,
    WebhookRequest,
)
from connectors.whatsapp import WhatsAppAdapter
from tests.connectors.helpers import PAYLOADS, instagram_settings, sms_settings, whatsapp_settings

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

WHATSAPP = WhatsAppAdapter()
INSTAGRAM = InstagramAdapter()
TWILIO = TwilioAdapter()
GENERIC = GenericAdapter()


def files(platform: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((PAYLOADS / platform).iterdir()) if path.is_file()]


def json_files(platform: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted(Path(PAYLOADS / platform).glob("*.json"))]


WHATSAPP_BODIES = files("whatsapp")
INSTAGRAM_BODIES = files("instagram")
TWILIO_BODIES = files("twilio")
GENERIC_BODIES = json_files("generic")

EVENT_TYPES = (
    InboundMessage,
    StatusUpdate,
    Reaction,
    Deletion,
    ReadReceipt,
    Echo,
    MessageEdit,
    IdentityChange,
    Activity,
    ChannelHealth,
    Unhandled,
    Unreadable,
)


def request(body: bytes, content_type: str = "application/json") -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://inbox.example.com/webhooks/x",
        headers={"Content-Type": content_type},
        body=body,
    )


def check(parse: Callable[[WebhookRequest], Any], req: WebhookRequest) -> None:
    try:
        events = parse(req)
    except PayloadError as exc:
        assert str(exc)
        return
    assert isinstance(events, list)
    for event in events:
        if isinstance(event, str):  # a routing key
            assert event
            continue
        well_formed(event)


def well_formed(event: Any) -> None:
    assert isinstance(event, EVENT_TYPES)
    if isinstance(event, Unreadable):
        assert event.where and event.error
        return
    if isinstance(event, Unhandled):
        assert event.field and event.where
        json.dumps(event.data)
        return
    if isinstance(event, ChannelHealth):
        assert event.field and event.event
        assert event.health == "ok" or event.reason
        json.dumps(event.data)
        return
    assert isinstance(event.timestamp, datetime)
    assert event.timestamp.tzinfo is not None
    if isinstance(event, InboundMessage):
        # Nothing is stored that a person cannot read.
        assert event.content or event.attachments
    if isinstance(event, Activity):
        assert event.summary and event.external_id
        json.dumps(event.data)
    if isinstance(event, IdentityChange):
        assert event.old_id and event.new_id and event.old_id != event.new_id
    # The application stores these as JSON: they must serialize.
    json.dumps([getattr(event, "attachments", []), getattr(event, "raw", {})])


def is_json_object(body: bytes) -> bool:
    try:
        return isinstance(orjson.loads(body), dict)
    except orjson.JSONDecodeError:
        return False


def check_meta(parse: Callable[[WebhookRequest], Any], req: WebhookRequest) -> None:
    """Meta parsers refuse only a body that is no JSON object; any part of an object
    they cannot read is an Unreadable event."""
    try:
        events = parse(req)
    except PayloadError as exc:
        assert str(exc)
        assert not is_json_object(req.body)
        return
    assert is_json_object(req.body)
    assert isinstance(events, list)
    for event in events:
        if isinstance(event, str):
            assert event
        else:
            well_formed(event)


def check_all_json(req: WebhookRequest) -> None:
    for meta_parse in (
        WHATSAPP.parse,
        WHATSAPP.routing_keys,
        WHATSAPP.account_keys,
        INSTAGRAM.parse,
        INSTAGRAM.routing_keys,
    ):
        check_meta(meta_parse, req)
    check(GENERIC.parse, req)
    with contextlib.suppress(PayloadError):
        parse_lead(req)


# -- value generators ---------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "99999999999999999999",
            "1e309",
            "sent",
            "failed",
            "image",
            "interactive",
            "reaction",
            "unsupported",
            "\x00",
            "\ud7ff",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths(child, (*prefix, index)))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = replaced(value[head], tuple(rest), new)
    return copy


@st.composite
def mutated_json(draw: st.DrawFn, bodies: list[bytes]) -> bytes:
    """A documented payload with one node (anywhere) swapped for another value."""
    original = json.loads(draw(st.sampled_from(bodies)))
    candidates = paths(original)
    path = draw(st.sampled_from(candidates))
    mutated = replaced(original, path, draw(json_values))
    return json.dumps(mutated, ensure_ascii=draw(st.booleans())).encode("utf-8")


@st.composite
def damaged(draw: st.DrawFn, bodies: list[bytes]) -> bytes:
    """A documented payload truncated, or with invalid UTF-8 spliced in."""
    body = draw(st.sampled_from(bodies))
    cut = draw(st.integers(min_value=0, max_value=len(body)))
    if draw(st.booleans()):
        return body[:cut]
    junk = draw(
        st.sampled_from(
            [
                b"\xff",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\x00",
                b"%ff",
                b"%",
                b"&&==",
            ]
        )
    )
    return body[:cut] + junk + body[cut:]


# -- the properties ---------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(body: bytes) -> None:
    check_all_json(request(body))
    for parse in (TWILIO.parse, TWILIO.routing_keys):
        check(parse, request(body, "application/x-www-form-urlencoded"))
    with contextlib.suppress(PayloadError):
        parse_lead(request(body, "application/x-www-form-urlencoded"))


@FUZZ
@given(damaged(WHATSAPP_BODIES + INSTAGRAM_BODIES + GENERIC_BODIES))
def test_truncated_and_invalid_utf8_json(body: bytes) -> None:
    check_all_json(request(body))


@FUZZ
@given(damaged(TWILIO_BODIES))
def test_truncated_and_invalid_utf8_forms(body: bytes) -> None:
    for parse in (TWILIO.parse, TWILIO.routing_keys):
        check(parse, request(body, "application/x-www-form-urlencoded"))


@FUZZ
@given(mutated_json(WHATSAPP_BODIES))
def test_whatsapp_wrong_types_anywhere(body: bytes) -> None:
    check(WHATSAPP.parse, request(body))
    check(WHATSAPP.routing_keys, request(body))


@FUZZ
@given(mutated_json(INSTAGRAM_BODIES))
def test_instagram_wrong_types_anywhere(body: bytes) -> None:
    check(INSTAGRAM.parse, request(body))
    check(INSTAGRAM.routing_keys, request(body))


@FUZZ
@given(mutated_json(GENERIC_BODIES))
def test_generic_and_lead_wrong_types_anywhere(body: bytes) -> None:
    check(GENERIC.parse, request(body))
    with contextlib.suppress(PayloadError):
        parse_lead(request(body))


field_names = st.one_of(
    st.sampled_from(
        [
            "From",
            "To",
            "Body",
            "MessageSid",
            "SmsSid",
            "MessageStatus",
            "SmsStatus",
            "ErrorCode",
            "NumMedia",
            "MediaUrl0",
            "MediaUrl999",
            "MediaContentType0",
            "ProfileName",
            "name",
            "email",
            "phone",
            "first_name",
            "tel",
            "notes",
        ]
    ),
    st.text(max_size=12),
)


@FUZZ
@given(st.data())
def test_twilio_and_lead_forms_with_any_fields(data: st.DataObject) -> None:
    base = parse_qsl(data.draw(st.sampled_from(TWILIO_BODIES)).decode(), keep_blank_values=True)
    extra = data.draw(st.lists(st.tuples(field_names, st.text(max_size=40)), max_size=8))
    if data.draw(st.booleans()):
        base = base[: data.draw(st.integers(min_value=0, max_value=len(base)))]
    body = urlencode(base + extra).encode()
    for parse in (TWILIO.parse, TWILIO.routing_keys):
        check(parse, request(body, "application/x-www-form-urlencoded"))
    with contextlib.suppress(PayloadError):
        parse_lead(request(body, "application/x-www-form-urlencoded"))


@FUZZ
@given(st.binary(max_size=256), st.one_of(st.none(), st.text(max_size=80)), st.text(max_size=60))
def test_verifiers_only_raise_signature_error(
    body: bytes, signature: str | None, url_tail: str
) -> None:
    headers = {}
    if signature is not None:
        headers = {"X-Hub-Signature-256": signature, "X-Twilio-Signature": signature}
    req = WebhookRequest(
        method="POST", url="https://inbox.example.com/" + url_tail, headers=headers, body=body
    )
    for adapter, channel in (
        (WHATSAPP, whatsapp_settings()),
        (INSTAGRAM, instagram_settings()),
        (TWILIO, sms_settings()),
    ):
        try:
            adapter.verify(req, channel)
        except SignatureError:
            pass
        else:
            raise AssertionError("garbage verified")


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge", "x"]),
        st.text(max_size=20),
    )
)
def test_handshake_never_raises(query: dict[str, str]) -> None:
    req = WebhookRequest(
        method="GET", url="https://inbox.example.com/webhooks/whatsapp", query=query
    )
    answer = WHATSAPP.challenge(req, [whatsapp_settings()])
    assert answer is None or (
        query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == "wa-verify-token"
    )
