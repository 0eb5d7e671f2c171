"""Channels as webhooks find them: by (kind, routing key), an organization's
generic channel, or every active channel of a kind (for deliveries that name only
an account, or no channel at all), remembered in-process; and, for a status
callback that names none of them, by the message it reports on (not remembered).

Every delivery names its channel before anything else happens, so the lookup (and
the parsing of the channel's settings) is worth keeping. Its secrets are decrypted
when it is loaded here, never per delivery, and loaded again after the TTL they
are not decrypted anew unless they changed. A change made through this process's
API clears the cache at once: a deactivated channel is refused by the next
delivery. A change made by another process (another server, the CLI)
is seen within ``TTL_SECONDS``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlmodel import col, select

from connectors.settings import ChannelSettings

from ..db import Database
from ..models import Channel, Message
from .channel_secrets import ChannelSecrets

TTL_SECONDS = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownChannel:
    """A channel row, detached and shared by deliveries: read it, never change it."""

    channel: Channel
    settings: ChannelSettings
    expires: float


class ChannelCache:
    def __init__(
        self, db: Database, secrets: ChannelSecrets, *, ttl: float = TTL_SECONDS
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.ttl = ttl
        # Each channel's settings as stored and as opened: a row read again with the
        # same settings reuses them (a dict comparison instead of a decryption).
        self._opened: dict[int | None, tuple[dict[str, Any], ChannelSettings]] = {}
        self._known: dict[tuple[str, str], KnownChannel] = {}
        self._generic: dict[int, KnownChannel] = {}
        self._active: dict[str, tuple[float, list[KnownChannel]]] = {}
        # Channels left out of `active` for settings that do not validate, told once.
        self._invalid_told: set[int | None] = set()
        # Bumped by every invalidation: a lookup that started before one must not
        # store what it read, which may be the old row.
        self._generation = 0

    async def lookup(self, kind: str, keys: Sequence[str]) -> dict[str, KnownChannel]:
        """The channels of ``kind`` with these routing keys, active or not; unknown
        keys are left out (and not remembered: a new channel counts at once)."""
        now = time.monotonic()
        found: dict[str, KnownChannel] = {}
        missing: list[str] = []
        for key in keys:
            known = self._known.get((kind, key))
            if known is not None and known.expires > now:
                found[key] = known
            else:
                missing.append(key)
        if missing:
            generation = self._generation
            read = await self._read(kind, missing, now + self.ttl)
            if generation == self._generation:
                self._known.update(((kind, key), known) for key, known in read.items())
            found.update(read)
        return found

    async def generic(self, organization_id: int) -> Channel | None:
        """The organization's generic channel (an active one before others), or None
        (not remembered: the first generic message makes one)."""
        now = time.monotonic()
        known = self._generic.get(organization_id)
        if known is not None and known.expires > now:
            return known.channel
        generation = self._generation
        async with self.db.session() as session:
            channel = (
                await session.exec(
                    select(Channel)
                    .where(
                        col(Channel.organization_id) == organization_id,
                        col(Channel.kind) == "generic",
                    )
                    .order_by(col(Channel.is_active).desc(), col(Channel.id))
                )
            ).first()
        if channel is not None and generation == self._generation:
            settings = self.settings_of(channel)
            self._generic[organization_id] = KnownChannel(channel, settings, now + self.ttl)
        return channel

    async def active(self, kind: str) -> list[KnownChannel]:
        """Every active channel of ``kind``, in id order: what a delivery that names no
        known routing key is matched against (by account id, or by its secret alone)."""
        now = time.monotonic()
        cached = self._active.get(kind)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        async with self.db.session() as session:
            rows = await session.exec(
                select(Channel)
                .where(col(Channel.kind) == kind, col(Channel.is_active))
                .order_by(col(Channel.id))
            )
            found = []
            for channel in rows:
                try:
                    settings = self.settings_of(channel)
                except ValidationError as exc:
                    # One organization's broken row must not stop every other
                    # organization's deliveries that are matched against the list.
                    if channel.id in self._invalid_told:
                        continue
                    self._invalid_told.add(channel.id)
                    log.warning(
                        "channel %s (%s) left out of webhook routing: its stored settings "
                        "are not valid (%s); set them again with PATCH /api/channels/%s",
                        channel.id, kind, _fields(exc), channel.id,
                        extra={"channel_id": channel.id, "kind": kind},
                    )
                    continue
                found.append(KnownChannel(channel, settings, now + self.ttl))
        if generation == self._generation:
            self._active[kind] = (now + self.ttl, found)
        return found

    async def app_secrets(self, kind: str) -> list[str]:
        """Every distinct app secret (current or still accepted) of the active channels
        of ``kind``: what signs a delivery that names none of them."""
        secrets: list[str] = []
        for known in await self.active(kind):
            for name in ("app_secret", "previous_app_secrets"):
                value = getattr(known.settings, name, None)
                for secret in value if isinstance(value, list) else [value]:
                    text = secret.get_secret_value() if isinstance(secret, SecretStr) else None
                    if text and text not in secrets:
                        secrets.append(text)
        return secrets

    async def auth_tokens(self, kind: str) -> list[str]:
        """Every distinct auth token (current or still accepted) of the active channels
        of ``kind``: what signs a Twilio delivery that names none of them."""
        tokens: list[str] = []
        for known in await self.active(kind):
            current = getattr(known.settings, "auth_token", None)
            for token in [current, *getattr(known.settings, "previous_auth_tokens", [])]:
                text = token.get_secret_value() if isinstance(token, SecretStr) else None
                if text and text not in tokens:
                    tokens.append(text)
        return tokens

    async def sent_through(
        self, kind: str, external_ids: Sequence[str], accounts: Sequence[str] = ()
    ) -> KnownChannel | None:
        """The active channel of ``kind`` that sent the message the platform calls by one
        of ``external_ids`` (the id the delivery worker stored with it), looked for among
        the channels of ``accounts`` (``account_sid``) when any is named; None if no
        such channel sent it.

        One query, on the ``(channel_id, external_id)`` key. Nothing is remembered: a
        message is reported on a few times at most, each step once."""
        candidates = {
            known.channel.id: known
            for known in await self.active(kind)
            if not accounts or getattr(known.settings, "account_sid", None) in accounts
        }
        if not external_ids or not candidates:
            return None
        async with self.db.session() as session:
            channel_id = (
                await session.exec(
                    select(Message.channel_id)
                    .where(
                        col(Message.channel_id).in_(list(candidates)),
                        col(Message.external_id).in_(list(external_ids)),
                        col(Message.direction) == "outbound",
                    )
                    .limit(1)
                )
            ).first()
        return candidates.get(channel_id) if channel_id is not None else None

    def invalidate(self) -> None:
        """Forget every channel; call after a change to any channel has committed."""
        self._generation += 1
        self._opened.clear()
        self._known.clear()
        self._generic.clear()
        self._active.clear()
        self._invalid_told.clear()

    def settings_of(self, channel: Channel) -> ChannelSettings:
        """A channel row's settings, its secrets decrypted once while they stay as
        stored (SecretsKeyError when one does not decrypt)."""
        opened = self._opened.get(channel.id)
        if opened is not None and opened[0] == channel.settings:
            return opened[1]
        settings = self.secrets.open(channel)
        self._opened[channel.id] = (channel.settings, settings)
        return settings

    async def _read(
        self, kind: str, keys: Sequence[str], expires: float
    ) -> dict[str, KnownChannel]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(Channel).where(col(Channel.kind) == kind, col(Channel.routing_key).in_(keys))
            )
            return {
                c.routing_key: KnownChannel(c, self.settings_of(c), expires)
                for c in rows
                if c.routing_key is not None
            }


def _fields(exc: ValidationError) -> str:
    """The names of the fields at fault, never their values (which may be secrets)."""
    names = {".".join(str(part) for part in error["loc"]) for error in exc.errors()}
    return ", ".join(sorted(name or "settings" for name in names))
