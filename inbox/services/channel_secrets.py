"""Channel secrets at rest: encrypted with Fernet under ``INBOX_SECRETS_KEY``.

Every secret field of a channel's settings (each kind's ``secret_fields``: app
secrets, access, verify and auth tokens, the previous ones still accepted) is
stored as ``"fernet:" + token``, a list of secrets as a list of such strings. The
other values stay as they were: routing, the API's view of a channel and SQL need
them, and they are not secret.

``open`` is the one way the service reads a channel's settings with its secrets;
the channel cache calls it once per channel it loads, so webhooks verify
signatures without decrypting anything. A value without the prefix is plaintext
written before encryption existed: it is still read, and ``inbox secrets rotate``
encrypts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text, cast
from sqlmodel import col, select

from connectors.settings import ChannelSettings, settings_model

from ..db import Database
from ..errors import ServiceUnavailable
from ..models import Channel
from ..settings import Settings

log = logging.getLogger("inbox.secrets")

PREFIX = "fernet:"
SETTING = "INBOX_SECRETS_KEY"
# What the API's view of a channel holds in place of each secret: it says which are
# set, never what they are, so showing a channel needs no key.
_STAND_IN = "*"


class SecretsKeyError(ServiceUnavailable):
    """A stored secret decrypts with none of the keys in INBOX_SECRETS_KEY.

    A 503 where a request meets it: a platform retries the delivery, and nothing is
    lost once the key that encrypted it is listed again."""


def undecryptable(channel_id: int | None, name: str) -> SecretsKeyError:
    return SecretsKeyError(
        f"The {name} of channel {channel_id} does not decrypt with any key in {SETTING}: "
        "list the key it was encrypted with (after the newest one) until "
        "`inbox secrets rotate` has run",
        {"setting": SETTING, "channel_id": channel_id},
    )


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _any_plaintext(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and v and not is_sealed(v) for v in values)


def _each(value: Any, change: Callable[[str], str]) -> Any:
    """``change`` applied to a secret, or to each of a list of them."""
    if isinstance(value, list):
        return [change(v) if isinstance(v, str) else v for v in value]
    return change(value) if isinstance(value, str) else value


@dataclass
class Rotation:
    """What a rotation did, counted in secret values (a list counts each of its items)."""

    encrypted: int = 0  # were plaintext
    reencrypted: int = 0  # were under an older key
    current: int = 0  # were under the newest key already
    channels: int = 0  # channels rewritten
    failed: list[int] = field(default_factory=list)  # channels whose secrets did not decrypt

    @property
    def rewritten(self) -> int:
        return self.encrypted + self.reencrypted


class ChannelSecrets:
    """Encrypts channel settings' secrets for storage and decrypts them for use."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError(f"{SETTING} holds no key")
        self._newest = Fernet(keys[0])
        self._keys = MultiFernet([Fernet(key) for key in keys])
        # Channels whose plaintext secrets this process has warned about, once each.
        self._plaintext_told: set[int | None] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelSecrets:
        return cls(settings.channel_secrets_keys)

    def seal(self, settings: ChannelSettings) -> dict[str, Any]:
        """What goes into the database: the settings, every secret encrypted."""
        stored = settings.stored()
        for name in settings.secret_fields & stored.keys():
            stored[name] = _each(stored[name], self._encrypt)
        return stored

    def open(self, channel: Channel) -> ChannelSettings:
        """The channel's settings with its secrets decrypted; SecretsKeyError when one
        does not decrypt with the keys configured."""
        return settings_model(channel.kind).model_validate(self.decrypted(channel))

    def decrypted(self, channel: Channel) -> dict[str, Any]:
        """The channel's stored settings with its secrets decrypted, not validated."""
        values = dict(channel.settings)
        plaintext = False
        for name in sorted(settings_model(channel.kind).secret_fields & values.keys()):
            plaintext = plaintext or _any_plaintext(values[name])
            try:
                values[name] = _each(values[name], self._decrypt)
            except InvalidToken:
                raise undecryptable(channel.id, name) from None
        if plaintext and channel.id not in self._plaintext_told:
            self._plaintext_told.add(channel.id)
            log.warning(
                "channel %s keeps secrets in plaintext: run `inbox secrets rotate`", channel.id
            )
        return values

    def rotate(self, channel: Channel) -> tuple[dict[str, Any] | None, Rotation]:
        """The channel's stored settings with every secret under the newest key (None
        when they are already), and what that took; SecretsKeyError when one does not
        decrypt."""
        model = settings_model(channel.kind)
        values = dict(channel.settings)
        counts = Rotation()

        def newest(value: str) -> str:
            if not is_sealed(value):
                counts.encrypted += 1
                return self._encrypt(value)
            token = value.removeprefix(PREFIX).encode()
            try:
                self._newest.decrypt(token)
            except InvalidToken:
                counts.reencrypted += 1
                return PREFIX + self._keys.rotate(token).decode()
            counts.current += 1
            return value

        for name in sorted(model.secret_fields & values.keys()):
            try:
                values[name] = _each(values[name], newest)
            except InvalidToken:
                raise undecryptable(channel.id, name) from None
        return (values if counts.rewritten else None), counts

    def _encrypt(self, value: str) -> str:
        return PREFIX + self._newest.encrypt(value.encode()).decode()

    def _decrypt(self, value: str) -> str:
        if not is_sealed(value):
            return value
        return self._keys.decrypt(value.removeprefix(PREFIX).encode()).decode()


def public_view(channel: Channel) -> ChannelSettings:
    """The channel's settings with a stand-in for each secret that is set: what the
    API shows (``public()``, ``configured_secrets()``) without any key."""
    model = settings_model(channel.kind)
    values = dict(channel.settings)
    for name in model.secret_fields & values.keys():
        values[name] = _each(values[name], lambda v: _STAND_IN if v else v)
    return model.model_validate(values)


async def rotate_all(db: Database, secrets: ChannelSecrets) -> Rotation:
    """Re-encrypt every stored channel secret under the newest key, a channel per
    transaction (its row locked on PostgreSQL): a change made meanwhile through the
    API is not lost. Channels already current are not written; running it again
    changes nothing."""
    counts = Rotation()
    async with db.session() as session:
        ids = [i for i in await session.exec(select(Channel.id).order_by(col(Channel.id))) if i]
    for channel_id in ids:
        async with db.session(write=True) as session:
            channel = await session.get(Channel, channel_id, with_for_update=True)
            if channel is None:
                continue  # deleted meanwhile
            try:
                rotated, done = secrets.rotate(channel)
            except SecretsKeyError as exc:
                log.error("%s", exc.message)
                counts.failed.append(channel_id)
                continue
            counts.current += done.current
            if rotated is None:
                continue
            channel.settings = rotated
            session.add(channel)
            await session.commit()
        counts.encrypted += done.encrypted
        counts.reencrypted += done.reencrypted
        counts.channels += 1
    return counts


async def check_key(db: Database, secrets: ChannelSecrets) -> None:
    """Raise SecretsKeyError unless the oldest channel holding encrypted secrets opens
    with the keys configured: the start-up check for a wrong key, one row whatever the
    number of channels. (The oldest is the likeliest to be under a key retired early.)"""
    async with db.session() as session:
        channel = (
            await session.exec(
                select(Channel)
                .where(cast(col(Channel.settings), Text).contains(f'"{PREFIX}'))
                .order_by(col(Channel.id))
                .limit(1)
            )
        ).first()
    if channel is not None:
        secrets.open(channel)
