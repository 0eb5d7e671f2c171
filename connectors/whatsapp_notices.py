"""WhatsApp deliveries that are not messages but still matter to the people reading
the inbox: calls (the ``calls`` field) and the ``system`` notices of a message
delivery, read into Activity events shown in the customer's conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .errors import PayloadError
from .payload import as_str, opt_number, opt_object, opt_str, type_name, unix_time
from .phones import to_e164
from .types import Activity, IdentityChange, InboundEvent, Unhandled

PLATFORM = "whatsapp"
CHANGED_NUMBER = frozenset({"user_changed_number", "customer_changed_number"})
_CHANGED_IDENTITY = frozenset({"customer_identity_changed", "user_identity_changed"})
CHANGED_USER_ID = "user_changed_user_id"

# (wa_id, profile name) of the party a number names, from the delivery's contacts.
ContactOf = Callable[[str | None], tuple[str | None, str | None]]


def call(
    raw: dict[str, Any], channel_key: str | None, contact_of: ContactOf, where: str
) -> InboundEvent:
    """One entry of ``calls[]``: ``connect`` when a call starts, ``terminate`` when it
    ends (with ``status`` COMPLETED or FAILED and, once answered, ``duration`` in
    seconds). ``direction`` tells who called: the customer (USER_INITIATED) or the
    business (BUSINESS_INITIATED), whose own connect is left to the agent placing it."""
    call_id = as_str(raw.get("id"), f"{where}.id")
    event = (opt_str(raw.get("event"), f"{where}.event") or "").lower()
    direction = (opt_str(raw.get("direction"), f"{where}.direction") or "USER_INITIATED").upper()
    by_customer = direction != "BUSINESS_INITIATED"
    # The customer is the caller of a call they made, the callee of one made to them.
    number = opt_str(raw.get("from" if by_customer else "to"), f"{where}.from")
    wa_id, name = contact_of(number)
    customer = wa_id or number
    if not customer:
        raise PayloadError("a call names no customer number", where)
    if event not in ("connect", "terminate") or (event == "connect" and not by_customer):
        return Unhandled(PLATFORM, channel_key, f"calls.{type_name(event or None)}", where, raw)
    timestamp = unix_time(raw.get("timestamp"), f"{where}.timestamp")
    status = (opt_str(raw.get("status"), f"{where}.status") or "").upper() or None
    duration = opt_number(raw.get("duration"), f"{where}.duration")
    started = opt_str(raw.get("start_time"), f"{where}.start_time")
    data: dict[str, Any] = {"call_id": call_id, "event": event, "direction": direction}
    for key, value in (
        ("status", status),
        ("duration", int(duration) if duration is not None else None),
        ("start_time", started),
        ("end_time", opt_str(raw.get("end_time"), f"{where}.end_time")),
    ):
        if value is not None:
            data[key] = value
    kind, summary = _call_reading(event, by_customer, status, duration, started)
    return Activity(
        platform=PLATFORM,
        channel_key=channel_key,
        sender_id=customer,
        kind=kind,
        summary=summary,
        timestamp=timestamp,
        external_id=f"{call_id}:{event}",
        data=data,
        sender_name=name,
        sender_phone=to_e164(customer),
    )


def _call_reading(
    event: str, by_customer: bool, status: str | None, duration: float | None, started: str | None
) -> tuple[str, str]:
    if event == "connect":
        return "call.incoming", "Incoming call"
    answered = status == "COMPLETED" and ((duration or 0) > 0 or started is not None)
    length = f", {call_length(duration)}" if answered and duration else ""
    if by_customer and answered:
        return "call.ended", f"Incoming call{length}"
    if by_customer:
        return "call.missed", "Missed call"
    if answered:
        return "call.outgoing", f"Outgoing call{length}"
    return "call.unanswered", "Outgoing call, not answered"


def call_length(seconds: float) -> str:
    """``3 min 12 s``, ``45 s``, ``1 h 5 min``: how long a call lasted, as read aloud."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def system(
    message: dict[str, Any],
    channel_key: str | None,
    sender: str | None,
    external_id: str,
    timestamp: datetime,
    where: str,
) -> list[InboundEvent]:
    """A ``system`` message: a notice about the customer, told in their conversation.
    A changed number or user id also moves the contact to the new one.

    No contacts array comes with it: the sender is ``from`` alone, never the contact
    of another message batched beside it."""
    notice = opt_object(message.get("system"), f"{where}.system") or {}
    kind = opt_str(notice.get("type"), f"{where}.system.type")
    body = opt_str(notice.get("body"), f"{where}.system.body")
    new_number = opt_str(notice.get("wa_id"), f"{where}.system.wa_id") or opt_str(
        notice.get("new_wa_id"), f"{where}.system.new_wa_id"
    )
    if kind == CHANGED_USER_ID:
        # Told without a number: only the contact that had the old user id can move.
        old = opt_str(notice.get("previous_user_id"), f"{where}.system.previous_user_id")
        new = opt_str(notice.get("user_id"), f"{where}.system.user_id")
        if old and new and old != new:
            return [
                IdentityChange(
                    PLATFORM, channel_key, old, new, timestamp, external_id, id_kind="user_id"
                )
            ]
        return [Unhandled(PLATFORM, channel_key, f"messages.system.{kind}", where, message)]
    moved: list[InboundEvent] = []
    if sender and kind in CHANGED_NUMBER and new_number and new_number != sender:
        moved.append(
            IdentityChange(
                PLATFORM,
                channel_key,
                sender,
                new_number,
                timestamp,
                f"{external_id}:identity",
                new_phone=to_e164(new_number),
            )
        )
    if sender and kind in CHANGED_NUMBER and new_number:
        summary = f"Customer changed their number to {to_e164(new_number) or new_number}"
        activity_kind = "contact.number_changed"
    elif sender and kind in _CHANGED_IDENTITY:
        summary = "Customer's security code changed"
        activity_kind = "contact.identity_changed"
    elif sender and body:
        summary, activity_kind = body, "system"
    else:
        # A changed user id names nobody we know by it; a notice too bare to attribute.
        field = f"messages.system.{type_name(kind)}"
        return [Unhandled(PLATFORM, channel_key, field, where, message)]
    return [
        Activity(
            platform=PLATFORM,
            channel_key=channel_key,
            sender_id=sender,
            kind=activity_kind,
            summary=summary,
            timestamp=timestamp,
            external_id=external_id,
            data={"system": notice},
            sender_phone=to_e164(sender),
        ),
        *moved,
    ]
