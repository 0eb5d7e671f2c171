"""Replies on the generic channel: it has no platform, only its owner's callback_url."""

from __future__ import annotations

from connectors.safe_urls import UnsafeUrl, check_destination
from connectors.settings import ChannelSettings, GenericSettings
from connectors.standard_webhooks import InvalidSecret, secret_bytes

from ...errors import ChannelCannotReply, field_error
from ...models import Channel

# What the API shows in place of a secret that is set: never a secret itself.
_STAND_IN = "*"
# A key of random bytes has nearly as many different values as bytes; one made of a
# few repeated values (``whsec_AAAA...``) is a placeholder, not a secret.
MIN_DISTINCT_BYTES = 8


def check_can_reply(channel: Channel) -> None:
    """ChannelCannotReply for a generic channel without a callback_url: a reply queued
    there could only fail."""
    if channel.kind == "generic" and not channel.settings.get("callback_url"):
        raise ChannelCannotReply(
            f"Channel {channel.id} ({channel.name}) is a generic channel without a "
            "callback_url, so replies have nowhere to go: set settings.callback_url and "
            "settings.callback_secret on the channel, or add a private note instead",
            {"channel_id": channel.id, "setting": "callback_url"},
        )


async def check_callback(settings: ChannelSettings, allow_private: bool) -> None:
    """A 422 naming ``settings.callback_secret`` when it is no real secret, or
    ``settings.callback_url`` when it resolves to an address replies may not be sent to
    (checked again at every send)."""
    if not isinstance(settings, GenericSettings):
        return
    check_secret(settings)
    url = settings.callback_url
    if not url:
        return
    try:
        await check_destination(url, allow_private)
    except UnsafeUrl as exc:
        raise field_error("settings.callback_url", str(exc)) from None


def check_secret(settings: GenericSettings) -> None:
    """A 422 naming ``settings.callback_secret`` for the API's stand-in ``*`` or a key
    too plain to sign with; anyone could forge replies' signatures with either."""
    if settings.callback_secret is None:
        return
    value = settings.callback_secret.get_secret_value()
    if value == _STAND_IN:
        raise field_error(
            "settings.callback_secret",
            "'*' is what the API shows for a secret that is set, not a secret: omit the "
            "field to keep the current one, or send a new secret (whsec_ and the base64 "
            "of 24 to 64 random bytes)",
        )
    try:
        key = secret_bytes(value)
    except InvalidSecret as exc:
        raise field_error("settings.callback_secret", str(exc)) from None
    if len(set(key)) < MIN_DISTINCT_BYTES:
        raise field_error(
            "settings.callback_secret",
            f"is too weak: its key repeats fewer than {MIN_DISTINCT_BYTES} different byte "
            "values; make it from random bytes (whsec_ and the base64 of 24 to 64 of them)",
        )
