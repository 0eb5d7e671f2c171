"""The sandbox platform: sends are accepted without the network, and the delivery
reports that follow are what the real platform's status webhook parses into."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors import sandbox
from connectors.registry import adapter_for
from connectors.settings import ChannelSettings, GenericSettings
from connectors.types import OutboundMessage, SendError, SendResult, StatusUpdate
from tests.connectors.helpers import (
    TWILIO_TOKEN,
    WHATSAPP_SECRET,
    instagram_settings,
    meta_request,
    payload,
    sms_settings,
    twilio_request,
    whatsapp_settings,
)

SENT_AT = datetime(2026, 1, 15, 16, 35, tzinfo=UTC)

# Network activity of this process, seen through Python's audit events (hooks cannot be
# removed, so one hook records only while a test listens).
_listening: list[list[str]] = []


def _audit(event: str, _args: tuple[Any, ...]) -> None:
    if _listening and event in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
        _listening[-1].append(event)


sys.addaudithook(_audit)


@pytest.fixture()
def network() -> Iterator[list[str]]:
    """The socket connections and lookups made while the test runs."""
    seen: list[str] = []
    _listening.append(seen)
    yield seen
    _listening.remove(seen)


def sandboxed(kind: str) -> ChannelSettings:
    make = {"whatsapp": whatsapp_settings, "instagram": instagram_settings, "sms": sms_settings}
    return make[kind](sandbox=True)


@pytest.mark.parametrize("kind", ["whatsapp", "instagram", "sms"])
async def test_a_send_is_accepted_with_a_fresh_platform_looking_id_and_no_network(
    kind: str, network: list[str]
) -> None:
    settings = sandboxed(kind)
    message = OutboundMessage(to="16505551234", text="Your order ships today.")
    first = await sandbox.send(settings, message)
    second = await sandbox.send(settings, message)
    assert isinstance(first, SendResult)
    for result in (first, second):
        assert result.external_id.startswith("sandbox.")
        assert len(result.external_id) == len("sandbox.") + 32
        int(result.external_id.removeprefix("sandbox."), 16)
    assert first.external_id != second.external_id
    assert network == []


async def test_the_audit_hook_does_see_a_connection(network: list[str]) -> None:
    # Proof that the check above could fail: a real connection attempt is recorded.
    import socket

    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", 1))
    assert "socket.connect" in network


async def test_attachments_alone_are_accepted_and_nothing_at_all_is_refused() -> None:
    settings = sandboxed("whatsapp")
    photo = [{"type": "image", "url": "https://cdn.example.com/p.jpg"}]
    assert await sandbox.send(settings, OutboundMessage(to="1", text="", attachments=photo))
    with pytest.raises(SendError) as empty:
        await sandbox.send(settings, OutboundMessage(to="16505551234", text=""))
    assert empty.value.retryable is False and empty.value.code == "unsupported"
    with pytest.raises(SendError) as nobody:
        await sandbox.send(settings, OutboundMessage(to="", text="Hello"))
    assert nobody.value.retryable is False and nobody.value.code == "no_recipient"


@pytest.mark.parametrize(
    "settings",
    [whatsapp_settings(), sms_settings(), instagram_settings(), GenericSettings()],
    ids=["whatsapp", "sms", "instagram", "generic"],
)
async def test_a_channel_that_is_not_a_sandbox_is_never_sent_through_it(
    settings: ChannelSettings,
) -> None:
    assert not sandbox.is_sandbox(settings)
    with pytest.raises(TypeError):
        await sandbox.send(settings, OutboundMessage(to="16505551234", text="Hi"))
    with pytest.raises(TypeError):
        sandbox.reports(
            settings, OutboundMessage(to="1", text="Hi"), SendResult("sandbox.x"), SENT_AT
        )


def test_the_setting_is_off_by_default_shown_when_on_and_never_a_secret() -> None:
    for make in (whatsapp_settings, instagram_settings, sms_settings):
        plain, on = make(), make(sandbox=True)
        assert sandbox.is_sandbox(on) and not sandbox.is_sandbox(plain)
        # A channel that never turned it on stores and shows what it did before.
        assert "sandbox" not in plain.stored() and "sandbox" not in plain.public()
        assert on.stored()["sandbox"] is True and on.public()["sandbox"] is True
        assert "sandbox" not in on.configured_secrets()
        assert make(sandbox=False).stored() == plain.stored()
        # What the CLI's --set key=value passes.
        assert sandbox.is_sandbox(make(sandbox="true"))
    with pytest.raises(ValueError):
        GenericSettings.model_validate({"sandbox": True})


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("whatsapp", [(1.0, "delivered"), (2.5, "read")]),
        ("instagram", [(2.5, "read")]),
        ("sms", [(1.0, "delivered")]),
    ],
)
def test_each_kind_reports_what_its_platform_reports_in_order(
    kind: str, expected: list[tuple[float, str]]
) -> None:
    settings = sandboxed(kind)
    message = OutboundMessage(to="+16505551234", text="Hi")
    sent = SendResult("sandbox.0123456789abcdef0123456789abcdef")
    reports = sandbox.reports(settings, message, sent, SENT_AT)
    assert [(r.after, r.event.status) for r in reports] == expected
    for report in reports:
        assert report.event == StatusUpdate(
            platform=kind,
            channel_key=settings.routing_key(),
            external_id=sent.external_id,
            status=report.event.status,
            timestamp=SENT_AT + timedelta(seconds=report.after),
            recipient_id="+16505551234",
            platform_status=report.event.status,
        )


def test_a_whatsapp_report_is_what_the_status_webhook_parses_into() -> None:
    settings = sandboxed("whatsapp")
    sent = SendResult("sandbox.feedfacefeedfacefeedfacefeedface")
    [delivered, read] = sandbox.reports(
        settings, OutboundMessage(to="16505551234", text="Hi"), sent, SENT_AT
    )
    for report, name in ((delivered, "status_delivered.json"), (read, "status_read.json")):
        body = json.loads(payload("whatsapp", name))
        status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
        status["id"] = sent.external_id
        status["timestamp"] = str(int(report.event.timestamp.timestamp()))
        raw = json.dumps(body).encode()
        [parsed] = adapter_for("whatsapp").parse(meta_request(raw, WHATSAPP_SECRET))
        assert isinstance(parsed, StatusUpdate)
        # WhatsApp's timestamps are whole seconds.
        assert abs(parsed.timestamp - report.event.timestamp) < timedelta(seconds=1)
        assert parsed == dataclasses.replace(report.event, timestamp=parsed.timestamp)


def test_an_sms_report_is_what_twilios_status_callback_parses_into() -> None:
    settings = sandboxed("sms")
    sent = SendResult("sandbox.0badc0de0badc0de0badc0de0badc0de")
    [delivered] = sandbox.reports(
        settings, OutboundMessage(to="+15558675310", text="Hi"), sent, SENT_AT
    )
    body = payload("twilio", "status_delivered.txt").decode()
    fields = dict(pair.split("=", 1) for pair in body.split("&"))
    fields.update(MessageSid=sent.external_id, From="%2B15017122661", To="%2B15558675310")
    raw = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
    [parsed] = adapter_for("sms").parse(
        twilio_request(raw, TWILIO_TOKEN, "https://inbox.example.com/webhooks/twilio/status")
    )
    assert isinstance(parsed, StatusUpdate)
    # Twilio's callback carries no time of its own: the parser stamps it on arrival.
    assert dataclasses.replace(parsed, timestamp=SENT_AT) == dataclasses.replace(
        delivered.event, timestamp=SENT_AT
    )
