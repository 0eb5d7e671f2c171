"""Connected channels and signed platform deliveries for the application's tests.

Routing keys are unique across the whole service (a webhook finds its channel
before it knows the tenant), so every channel a test connects gets fresh ids,
and the documented payload files are rewritten to carry them before signing.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

import httpx
from sqlmodel import col, select

from connectors.signatures import meta_signature, twilio_signature
from inbox.models import Event
from tests.connectors.helpers import TWILIO_ACCOUNT_SID, payload

T = TypeVar("T")

# The ids the payload files carry for our side of the conversation.
DOC_PHONE_NUMBER_ID = b"106540352242922"
DOC_INSTAGRAM_ACCOUNT = b"17841405822304914"
DOC_TWILIO_NUMBER = "+15017122661"

# Random start: the databases of a session are fresh, but a reused PostgreSQL
# server (INBOX_TEST_DATABASE_URL) should never see the same ids twice.
_numbers = itertools.count(random.randrange(10**6, 9 * 10**6))


def unique_digits(width: int) -> str:
    """Digits no other channel of this test session uses."""
    return str(next(_numbers)).zfill(width)[-width:]


@dataclass
class Connected:
    """A channel connected through the API, and the secrets it was given."""

    id: int
    kind: str
    key: str
    settings: dict[str, Any]

    @property
    def secret(self) -> str:
        """What signs this channel's webhooks: the app secret or the auth token."""
        return str(self.settings.get("app_secret") or self.settings.get("auth_token"))


def connect(tenant: Any, kind: str, settings: dict[str, Any], name: str | None = None) -> Connected:
    r = tenant.api.post(
        "/api/channels", json={"kind": kind, "name": name or f"{kind} line", "settings": settings}
    )
    assert r.status_code == 201, r.text
    channel = r.json()
    return Connected(channel["id"], kind, channel["routing_key"], settings)


def whatsapp_channel(tenant: Any, **overrides: Any) -> Connected:
    n = unique_digits(9)
    settings = {
        "phone_number_id": f"106{n}",
        "access_token": f"wa-token-{n}",
        "app_secret": f"wa-secret-{n}",
        "verify_token": f"wa-verify-{n}",
        **overrides,
    }
    return connect(tenant, "whatsapp", settings)


def instagram_channel(tenant: Any, **overrides: Any) -> Connected:
    n = unique_digits(9)
    settings = {
        "account_id": f"178{n}",
        "access_token": f"ig-token-{n}",
        "app_secret": f"ig-secret-{n}",
        "verify_token": f"ig-verify-{n}",
        **overrides,
    }
    return connect(tenant, "instagram", settings)


def sms_channel(tenant: Any, **overrides: Any) -> Connected:
    n = unique_digits(7)
    settings = {
        "phone_number": f"+1415{n}",
        "account_sid": TWILIO_ACCOUNT_SID,
        "auth_token": f"twilio-token-{n}",
        **overrides,
    }
    return connect(tenant, "sms", settings)


# -- payload files addressed to a channel -----------------------------------


def whatsapp_body(channel: Connected, name: str) -> bytes:
    return payload("whatsapp", name).replace(DOC_PHONE_NUMBER_ID, channel.key.encode())


def instagram_body(channel: Connected, name: str) -> bytes:
    return payload("instagram", name).replace(DOC_INSTAGRAM_ACCOUNT, channel.key.encode())


def sms_body(channel: Connected, name: str, **fields: str) -> bytes:
    """A Twilio form with our number replaced by the channel's, and ``fields`` set."""
    pairs = parse_qsl(payload("twilio", name).decode(), keep_blank_values=True)
    ours = {"To": channel.key} if _is_incoming(pairs) else {"From": channel.key}
    return form_body(pairs, {**ours, **fields})


def _is_incoming(pairs: list[tuple[str, str]]) -> bool:
    return dict(pairs).get("SmsStatus") == "received"


def form_body(pairs: list[tuple[str, str]], replace: dict[str, str]) -> bytes:
    seen = set()
    out = []
    for name, value in pairs:
        out.append((name, replace.get(name, value)))
        seen.add(name)
    out.extend((name, value) for name, value in replace.items() if name not in seen)
    return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in out).encode()


def whatsapp_text(
    channel: Connected, wamid: str, text: str, *, wa_id: str = "16505551234",
    name: str = "Sheena Nelson", timestamp: int = 1749416383,
) -> bytes:
    """One text message in the documented shape, with its own ids."""
    body = json.loads(whatsapp_body(channel, "text.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    value["messages"][0].update(
        {"from": wa_id, "id": wamid, "timestamp": str(timestamp), "text": {"body": text}}
    )
    return json.dumps(body).encode()


def whatsapp_status(
    channel: Connected, wamid: str, status: str, *, recipient: str = "16505551234",
    timestamp: int = 1750263774,
) -> bytes:
    """A status-only delivery about one of our messages."""
    body = json.loads(whatsapp_body(channel, "status_sent.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["statuses"][0].update(
        {"id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": recipient}
    )
    return json.dumps(body).encode()


# -- posting deliveries --------------------------------------------------------


def meta_headers(body: bytes, secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = meta_signature(secret, body)
    return headers


def post_meta(
    service: Any, kind: str, body: bytes, secret: str | None, client: httpx.Client | None = None
) -> httpx.Response:
    """POST a Meta delivery to ``/webhooks/<kind>``, signed with ``secret`` (None: unsigned)."""
    http = client or service.client()
    return http.post(f"/webhooks/{kind}", content=body, headers=meta_headers(body, secret))


def twilio_headers(url: str, body: bytes, token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token is not None:
        params = parse_qsl(body.decode(), keep_blank_values=True)
        headers["X-Twilio-Signature"] = twilio_signature(token, url, params)
    return headers


def post_twilio(
    service: Any, path: str, body: bytes, token: str | None, signed_url: str | None = None
) -> httpx.Response:
    """POST a Twilio form, signed over ``signed_url`` (default: the URL the server sees)."""
    url = signed_url or f"{service.url}{path}"
    return service.client().post(path, content=body, headers=twilio_headers(url, body, token))


# -- what the database holds -----------------------------------------------------


def rows(service: Any, model: type[T], *where: Any, order: Any = None) -> list[T]:
    async def load() -> list[T]:
        async with service.db.session() as session:
            stmt = select(model).where(*where)
            stmt = stmt.order_by(order if order is not None else col(model.id))  # type: ignore[attr-defined]
            return list(await session.exec(stmt))

    return service.run(load())  # type: ignore[no-any-return]


def events_of(service: Any, org_id: int, type: str | None = None) -> list[Event]:
    where = [col(Event.organization_id) == org_id]
    if type is not None:
        where.append(col(Event.type) == type)
    return rows(service, Event, *where, order=col(Event.id))


def event_types(service: Any, org_id: int) -> list[str]:
    return [e.type for e in events_of(service, org_id)]


def wait_for(check: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
