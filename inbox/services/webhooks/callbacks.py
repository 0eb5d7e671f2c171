"""Replies on the generic channel: it has no platform, only its owner's callback_url."""

from __future__ import annotations

from connectors.safe_urls import UnsafeUrl, check_destination
from connectors.settings import ChannelSettings, GenericSettings

from ...errors import ChannelCannotReply, field_error
from ...models import Channel


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
    """A 422 naming ``settings.callback_url`` when it resolves to an address replies may
    not be sent to (checked again at every send)."""
    url = settings.callback_url if isinstance(settings, GenericSettings) else None
    if not url:
        return
    try:
        await check_destination(url, allow_private)
    except UnsafeUrl as exc:
        raise field_error("settings.callback_url", str(exc)) from None
