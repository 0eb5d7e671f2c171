"""What WhatsApp tells about the account behind a channel, read into ChannelHealth.

``account_update`` reports what happened to the WhatsApp Business Account (a policy
violation, a restriction, a ban and its lifting, deletion, offboarding, a partner
losing access); ``phone_number_quality_update`` a number's quality rating and
messaging limit. What neither restricts nor disables (a template reviewed, a
capability changed, a verification) is still told, with no health of its own.
"""

from __future__ import annotations

from typing import Any

from .payload import as_list, as_object, opt_object, opt_str
from .types import ChannelHealth, Health

PLATFORM = "whatsapp"
# Fields read here; every other non-message field stays Unhandled.
FIELDS = frozenset(
    {
        "account_update",
        "phone_number_quality_update",
        "message_template_status_update",
        "business_capability_update",
        "phone_number_name_update",
    }
)
# Account events that end the account's use by this app.
_GONE = {
    "ACCOUNT_DELETED": "The WhatsApp Business Account was deleted",
    "ACCOUNT_OFFBOARDED": "The WhatsApp Business Account was offboarded",
    "PARTNER_REMOVED": "This app's access to the WhatsApp Business Account was removed",
    "PARTNER_APP_UNINSTALLED": "This app was uninstalled from the WhatsApp Business Account",
}
_BACK = {
    "VERIFIED_ACCOUNT": "The WhatsApp Business Account was verified",
    "ACCOUNT_RECONNECTED": "The WhatsApp Business Account was reconnected",
}


def account_notice(
    field: str, value: dict[str, Any], channel_key: str | None, account_id: str | None, where: str
) -> ChannelHealth:
    event = (opt_str(value.get("event"), f"{where}.event") or "").upper()
    if field == "account_update":
        health, reason = _account_update(event, value, where)
    elif field == "phone_number_quality_update":
        health, reason = _quality(event, value, where)
    else:
        health, reason = None, _described(field, event, value, where)
    return ChannelHealth(
        platform=PLATFORM,
        channel_key=channel_key,
        account_id=account_id,
        field=field,
        event=event or field,
        health=health,
        reason=reason,
        data=value,
    )


def _account_update(
    event: str, value: dict[str, Any], where: str
) -> tuple[Health | None, str | None]:
    ban = opt_object(value.get("ban_info"), f"{where}.ban_info") or {}
    ban_state = (opt_str(ban.get("waba_ban_state"), f"{where}.ban_info.waba_ban_state") or "")
    ban_date = opt_str(ban.get("waba_ban_date"), f"{where}.ban_info.waba_ban_date")
    ban_state = ban_state.upper()
    violation = opt_object(value.get("violation_info"), f"{where}.violation_info") or {}
    violation_type = opt_str(
        violation.get("violation_type"), f"{where}.violation_info.violation_type"
    )
    if ban_state == "DISABLE":
        on = f" on {ban_date}" if ban_date else ""
        why = f" ({_words(violation_type)})" if violation_type else ""
        return "disabled", f"The WhatsApp Business Account was disabled{on}{why}"
    if ban_state == "REINSTATE":
        return "ok", None
    if ban_state == "SCHEDULE_FOR_DISABLE":
        on = f" on {ban_date}" if ban_date else ""
        return "restricted", f"The WhatsApp Business Account is scheduled to be disabled{on}"
    if event == "ACCOUNT_RESTRICTION":
        return "restricted", _restrictions(value, where)
    if event == "ACCOUNT_VIOLATION":
        kind = f": {_words(violation_type)}" if violation_type else ""
        return "restricted", f"Policy violation{kind}"
    if event in _GONE:
        return "disabled", _GONE[event]
    if event in _BACK:
        return "ok", None
    return None, _described("account_update", event, value, where)


def _restrictions(value: dict[str, Any], where: str) -> str:
    parts = []
    info_where = f"{where}.restriction_info"
    for k, raw in enumerate(as_list(value.get("restriction_info"), info_where)):
        item = as_object(raw, f"{info_where}[{k}]")
        kind = opt_str(item.get("restriction_type"), f"{info_where}[{k}].restriction_type")
        until = opt_str(item.get("expiration"), f"{info_where}[{k}].expiration")
        if kind:
            text = _words(kind.removeprefix("RESTRICTED_"))
            parts.append(f"{text} until {until}" if until else text)
    return "Restricted: " + "; ".join(parts) if parts else "The account is restricted"


def _quality(event: str, value: dict[str, Any], where: str) -> tuple[Health | None, str | None]:
    limit = (opt_str(value.get("current_limit"), f"{where}.current_limit") or "").upper()
    if event == "FLAGGED" or limit == "RESTRICTED":
        tier = f" (messaging limit {limit})" if limit and limit != "RESTRICTED" else ""
        return "restricted", f"The phone number's quality is flagged{tier}"
    if event == "UNFLAGGED":
        return "ok", None
    return None, _described("phone_number_quality_update", event, value, where)


def _described(field: str, event: str, value: dict[str, Any], where: str) -> str:
    """One line for a notice that changes nothing: logged, for the record."""
    name = opt_str(value.get("message_template_name"), f"{where}.message_template_name")
    subject = f" {name}" if name else ""
    return f"{_words(field)}{subject}: {_words(event)}" if event else _words(field)


def _words(code: str | None) -> str:
    """``ACCOUNT_RESTRICTION`` as ``account restriction``."""
    return (code or "").replace("_", " ").strip().lower()
