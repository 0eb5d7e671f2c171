"""Signing secrets at rest (Fernet under ``INBOX_SECRETS_KEY``, as channel secrets are)
and which of an endpoint's secrets sign right now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ...errors import ServiceUnavailable
from ...models import WebhookEndpoint, utcnow

PREFIX = "fernet:"
# How long a replaced secret keeps signing beside its successor.
ROTATION_OVERLAP = timedelta(hours=24)


class WebhookSecrets:
    def __init__(self, keys: Sequence[bytes]) -> None:
        self._newest = Fernet(keys[0])
        self._keys = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secret: str) -> str:
        return PREFIX + self._newest.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._keys.decrypt(sealed.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise ServiceUnavailable(
                "A webhook signing secret does not decrypt with any key in INBOX_SECRETS_KEY",
                {"setting": "INBOX_SECRETS_KEY"},
            ) from None

    def signing(self, endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
        """The secrets that sign a request to ``endpoint`` now, newest first."""
        found = [self.open(endpoint.secret)]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and expires > (now or utcnow()):
            found.append(self.open(endpoint.previous_secret))
        return found

    def rotate(self, endpoint: WebhookEndpoint, new_secret: str) -> None:
        """Make ``new_secret`` the current one; the current one signs on for a day."""
        now = utcnow()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.secret = self.seal(new_secret)
        endpoint.updated_at = now
