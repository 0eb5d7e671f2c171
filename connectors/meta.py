"""What WhatsApp Cloud API and Instagram Messaging share, both being Meta
Graph API products: the subscription handshake, the Graph error format, and
reading a delivery one part at a time."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, Protocol

import httpx
from pydantic import SecretStr

from .errors import PayloadError
from .sending import json_body
from .signatures import verify_meta
from .types import InboundEvent, Unreadable, WebhookRequest

P = ParamSpec("P")

# Graph error codes that mean "later", even when sent with HTTP 400: rate
# limits (4, 17, 32, 341, 613, 80007, 130429, 131056) and temporary
# unavailability (1, 2, 131016, 133004).
_RETRYABLE_CODES = frozenset(
    {"1", "2", "4", "17", "32", "341", "613", "80007", "130429", "131016", "131056", "133004"}
)


class MetaApp(Protocol):
    """The settings of a channel that a Meta app's webhooks reach."""

    @property
    def app_secret(self) -> SecretStr: ...

    @property
    def previous_app_secrets(self) -> list[SecretStr]: ...

    @property
    def verify_token(self) -> SecretStr: ...


def verify(req: WebhookRequest, app: MetaApp) -> None:
    """Raise SignatureError unless the app's secret, or one still accepted, signed it."""
    secrets = [app.app_secret, *app.previous_app_secrets]
    verify_meta(req, [secret.get_secret_value() for secret in secrets])


def challenge(req: WebhookRequest, apps: Iterable[MetaApp]) -> str | None:
    """``hub.challenge`` when the request is a subscription handshake whose
    ``hub.verify_token`` is one of the apps'; None otherwise (403)."""
    if req.query.get("hub.mode") != "subscribe":
        return None
    received = req.query.get("hub.verify_token", "")
    answer = req.query.get("hub.challenge")
    if not received or answer is None:
        return None
    received_bytes = received.encode("utf-8")
    matched = False
    for app in apps:
        token = app.verify_token.get_secret_value()
        if token:
            matched |= hmac.compare_digest(received_bytes, token.encode("utf-8"))
    return answer if matched else None


def read_graph_error(response: httpx.Response) -> tuple[str | None, str | None, bool]:
    """(code, message, retryable) from a Graph API error body:
    ``{"error": {"message", "code", "error_subcode", "error_data": {"details"}}}``."""
    error = json_body(response).get("error")
    if not isinstance(error, dict):
        return None, None, False
    raw_code = error.get("code")
    code = str(raw_code) if isinstance(raw_code, int | str) and raw_code != "" else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details:
        message = f"{message}: {details}" if message else details
    # Graph marks some errors as transient itself.
    transient = error.get("is_transient") is True
    return code, message, transient or code in _RETRYABLE_CODES


def isolated(
    platform: str,
    channel_key: str | None,
    where: str,
    read: Callable[P, InboundEvent | Sequence[InboundEvent]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> list[InboundEvent]:
    """The events ``read(*args)`` finds in one part of a delivery, or one Unreadable
    for it.

    Meta retries a refused delivery for days and may end the subscription, so one
    part that is not what the platform documents costs only itself.
    """
    try:
        found = read(*args, **kwargs)
    except PayloadError as exc:
        return [Unreadable(platform, channel_key, exc.where or where, exc.message)]
    return list(found) if isinstance(found, Sequence) else [found]


def lenient_str(value: Any) -> str | None:
    """An id as routing reads it: a non-empty string or integer, else None (never raises)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
