"""Building blocks for connector tests, reusable by the application's tests:
payload files, channel settings, and signed webhook requests."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from connectors.settings import InstagramSettings, SmsSettings, WhatsAppSettings
from connectors.signatures import meta_signature, twilio_signature
from connectors.types import WebhookRequest

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"

WHATSAPP_SECRET = "wa-app-secret"
INSTAGRAM_SECRET = "ig-app-secret"
TWILIO_TOKEN = "twilio-auth-token"
TWILIO_ACCOUNT_SID = "AC1d9a8c7b6e5f4a3b2c1d0e9f8a7b6c5d"


def payload(platform: str, name: str) -> bytes:
    """The exact bytes of ``tests/payloads/<platform>/<name>``."""
    return (PAYLOADS / platform / name).read_bytes()


def whatsapp_settings(**overrides: object) -> WhatsAppSettings:
    values: dict[str, object] = {
        "phone_number_id": "106540352242922",
        "access_token": "wa-access-token",
        "app_secret": WHATSAPP_SECRET,
        "verify_token": "wa-verify-token",
    }
    values.update(overrides)
    return WhatsAppSettings.model_validate(values)


def instagram_settings(**overrides: object) -> InstagramSettings:
    values: dict[str, object] = {
        "account_id": "17841405822304914",
        "access_token": "ig-access-token",
        "app_secret": INSTAGRAM_SECRET,
        "verify_token": "ig-verify-token",
    }
    values.update(overrides)
    return InstagramSettings.model_validate(values)


def sms_settings(**overrides: object) -> SmsSettings:
    values: dict[str, object] = {
        "phone_number": "+15017122661",
        "account_sid": TWILIO_ACCOUNT_SID,
        "auth_token": TWILIO_TOKEN,
    }
    values.update(overrides)
    return SmsSettings.model_validate(values)


def meta_request(
    body: bytes,
    secret: str | None,
    url: str = "https://inbox.example.com/webhooks/whatsapp",
) -> WebhookRequest:
    """A POST as Meta sends it, signed with ``secret`` (unsigned when None)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = meta_signature(secret, body)
    return WebhookRequest(method="POST", url=url, headers=headers, body=body)


def twilio_request(
    body: bytes,
    token: str | None,
    url: str = "https://inbox.example.com/webhooks/twilio/sms",
) -> WebhookRequest:
    """A form POST as Twilio sends it, signed with ``token`` (unsigned when None)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        headers["X-Twilio-Signature"] = twilio_signature(token, url, params)
    return WebhookRequest(method="POST", url=url, headers=headers, body=body)
