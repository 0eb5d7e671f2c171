"""Webhook signatures: computing them (tests, local simulation) and verifying
them in constant time against every secret a channel currently accepts."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from .errors import PayloadError, SignatureError
from .payload import load_form
from .types import WebhookRequest

META_HEADER = "x-hub-signature-256"
TWILIO_HEADER = "x-twilio-signature"


def meta_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends: HMAC-SHA256 of the raw body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_meta(req: WebhookRequest, secrets: Sequence[str]) -> None:
    """Raise SignatureError unless ``X-Hub-Signature-256`` matches one of ``secrets``.

    The raw bytes are what is hashed: Meta escapes non-ASCII as ``\\uXXXX`` in
    some deliveries and not in others, so re-serializing parsed JSON would not
    reproduce what was signed.
    """
    header = req.headers.get(META_HEADER)
    if not header:
        raise SignatureError("missing X-Hub-Signature-256 header")
    scheme, _, received = header.strip().partition("=")
    if scheme.lower() != "sha256" or not received:
        raise SignatureError("X-Hub-Signature-256 is not of the form sha256=<hex>")
    received_bytes = received.lower().encode("ascii", "replace")
    if not _any_matches(
        received_bytes, (meta_signature(s, req.body)[7:].encode("ascii") for s in secrets if s)
    ):
        raise SignatureError("X-Hub-Signature-256 does not match")


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` value: base64 of HMAC-SHA1, keyed by the auth
    token, over the URL followed by each POST parameter's name and value, sorted
    by name (a repeated name contributes each of its values, sorted)."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    data = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio(req: WebhookRequest, auth_tokens: Sequence[str]) -> None:
    """Raise SignatureError unless ``X-Twilio-Signature`` matches one of ``auth_tokens``.

    ``req.url`` must be the public URL Twilio called, query string included.
    Twilio may sign the URL with or without the scheme's default port, so both
    spellings are tried.
    """
    header = req.headers.get(TWILIO_HEADER)
    if not header:
        raise SignatureError("missing X-Twilio-Signature header")
    params: list[tuple[str, str]] = []
    if req.method.upper() == "POST":
        try:
            params = load_form(req.body)
        except PayloadError:
            raise SignatureError("body cannot be read to check X-Twilio-Signature") from None
    received = header.strip().encode("ascii", "replace")
    candidates = (
        twilio_signature(token, url, params).encode("ascii")
        for token in auth_tokens
        if token
        for url in _port_variants(req.url)
    )
    if not _any_matches(received, candidates):
        raise SignatureError("X-Twilio-Signature does not match")


def _any_matches(received: bytes, expected: Iterable[bytes]) -> bool:
    # Compare against every candidate, without stopping early, so the time
    # taken does not tell which secret (if any) was close.
    matched = False
    for candidate in expected:
        matched |= hmac.compare_digest(received, candidate)
    return matched


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    host = parts.hostname or ""
    if default is None or not host:
        return [url]
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port or default}"))
    variants = [url]
    for variant in (without_port, with_port):
        if variant not in variants:
            variants.append(variant)
    return variants
