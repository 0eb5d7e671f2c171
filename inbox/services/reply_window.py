"""The reply window: how long after the customer's last message a platform takes
free-form replies.

WhatsApp takes them for 24 hours after the customer's last message (its "customer
service window"); after that only an approved template. Instagram's standard
messaging window is also 24 hours, and this service sends no message tag that
would stretch it, so it is held to the same rule (with no templates to fall back
on: a conversation whose window has closed waits for the customer). SMS and the
generic channel have no window: ``None``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..errors import ApiError

WINDOWS: dict[str, timedelta] = {
    "whatsapp": timedelta(hours=24),
    "instagram": timedelta(hours=24),
}


class ReplyWindowClosed(ApiError):
    status, code = 422, "REPLY_WINDOW_CLOSED"


def window_expires_at(
    channel_kind: str, last_inbound_at: datetime | None, opened_at: datetime
) -> datetime | None:
    """When free-form replies stop being accepted; None where the platform has no window.
    A conversation the customer never wrote in has had its window closed since it opened."""
    window = WINDOWS.get(channel_kind)
    if window is None:
        return None
    if last_inbound_at is None:
        return opened_at
    return last_inbound_at + window


def check_free_form(
    channel_kind: str, last_inbound_at: datetime | None, opened_at: datetime, now: datetime
) -> None:
    """Refuse a free-form reply outside the window, naming what is still possible."""
    expires = window_expires_at(channel_kind, last_inbound_at, opened_at)
    if expires is None or now < expires:
        return
    fallback = (
        "send an approved template instead"
        if channel_kind == "whatsapp"
        else "wait for the customer to write again"
    )
    hours = int(WINDOWS[channel_kind].total_seconds() // 3600)
    raise ReplyWindowClosed(
        f"The {hours}-hour reply window of this conversation has closed; {fallback}",
        {"reply_window_expires_at": expires.isoformat().replace("+00:00", "Z")},
    )
