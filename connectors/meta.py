"""What WhatsApp Cloud API and Instagram Messaging share, both being Meta
Graph API products: the subscription handshake and the Graph error format."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import httpx

from .sending import json_body
from .types import WebhookRequest

# Graph error codes that mean "later", even when sent with HTTP 400: rate
# limits (4, 17, 32, 341, 613, 80007, 130429, 131056) and temporary
# unavailability (1, 2, 131016, 133004).
_RETRYABLE_CODES = frozenset(
    {"1", "2", "4", "17", "32", "341", "613", "80007", "130429", "131016", "131056", "133004"}
)


def challenge(req: WebhookRequest, verify_tokens: Iterable[str]) -> str | None:
    """``hub.challenge`` when the request is a subscription handshake whose
    ``hub.verify_token`` equals one of ``verify_tokens``; None otherwise (403)."""
    if req.query.get("hub.mode") != "subscribe":
        return None
    received = req.query.get("hub.verify_token", "")
    answer = req.query.get("hub.challenge")
    if not received or answer is None:
        return None
    received_bytes = received.encode("utf-8")
    matched = False
    for token in verify_tokens:
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
