"""Standard Webhooks (www.standardwebhooks.com): signing a request, and checking one.

A secret is ``whsec_`` and the base64 of its bytes. A request carries ``webhook-id``
(the same on every retry of one message), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: ``v1,`` and the base64 of HMAC-SHA256 over
``"{id}.{timestamp}.{body}"``, one such entry per secret in force, space-separated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

PREFIX = "whsec_"
SECRET_BYTES = 32
# The specification's bounds on a secret's size.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
# How far a receiver lets a timestamp stray from its own clock, either way.
TOLERANCE_SECONDS = 5 * 60


class InvalidSecret(ValueError):
    """Not a ``whsec_`` secret of 24 to 64 bytes."""


class SignatureMismatch(ValueError):
    """A request whose headers do not prove it came from the holder of the secret."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key a ``whsec_`` secret stands for; InvalidSecret otherwise."""
    if not secret.startswith(PREFIX):
        raise InvalidSecret(f"must start with {PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(f"must be {PREFIX} followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` entry of the signature header."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    secrets_in_force: Iterable[str], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers of a request signed with each secret given (newest first)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": " ".join(
            signature(secret, msg_id, stamp, body) for secret in secrets_in_force
        ),
    }


def verify(
    secret: str,
    request_headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """What a receiver does: SignatureMismatch unless one ``v1`` entry matches and the
    timestamp is within ``tolerance`` of ``now``. Header names are lower-case."""
    msg_id = request_headers.get("webhook-id")
    stamp = request_headers.get("webhook-timestamp")
    given = request_headers.get("webhook-signature")
    if not msg_id or not stamp or not given:
        raise SignatureMismatch("a webhook-id, webhook-timestamp or webhook-signature is missing")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureMismatch("webhook-timestamp is not a whole number") from None
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise SignatureMismatch("webhook-timestamp is too far from now")
    expected = signature(secret, msg_id, timestamp, body)
    for entry in given.split(" "):
        if entry.startswith("v1,") and hmac.compare_digest(entry, expected):
            return
    raise SignatureMismatch("no signature matches")
