"""What one WhatsApp message says, whatever its type: the text a person reads (the
body, a caption, or a short sentence for what has no text), the media it carries,
and the structured parts worth keeping (a location, contact cards, a reply, an
order). Shared by messages, message echoes and edits, which carry the same
content objects.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .errors import PayloadError
from .payload import as_list, as_object, opt_bool, opt_number, opt_object, opt_str

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")

Content = tuple[str, list[dict[str, Any]], dict[str, Any]]


def message_content(kind: str, message: dict[str, Any], where: str) -> Content:
    """(content, attachments, raw extras) of one message of type ``kind``; the content
    is never empty unless there is an attachment to show."""
    part_where = f"{where}.{kind}"
    if kind == "contacts":
        return _contacts(message, part_where)
    if kind in MEDIA_TYPES:
        return _media(kind, opt_object(message.get(kind), part_where) or {}, part_where)
    if kind in _READERS:
        return _READERS[kind](opt_object(message.get(kind), part_where) or {}, part_where)
    if kind in ("unsupported", "unknown"):
        return _unsupported(message, where), [], _kept(message, kind)
    if kind == "request_welcome":
        return "Customer opened the chat", [], {}
    # Types added after this was written: keep what came, say what it is.
    part = message.get(kind)
    body = part.get("body") if isinstance(part, dict) else None
    text = body if isinstance(body, str) and body else f"Unsupported message ({kind})"
    return text, [], _kept(message, kind)


def _kept(message: dict[str, Any], kind: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if kind in message:
        raw[kind] = message[kind]
    if isinstance(message.get("errors"), list):
        raw["errors"] = message["errors"]
    return raw


def error_text(errors: list[Any], where: str) -> str | None:
    """``title: details`` of the first of a platform's ``errors[]``."""
    if not errors:
        return None
    first = as_object(errors[0], f"{where}[0]")
    title = opt_str(first.get("title"), f"{where}[0].title") or opt_str(
        first.get("message"), f"{where}[0].message"
    )
    data = opt_object(first.get("error_data"), f"{where}[0].error_data") or {}
    details = opt_str(data.get("details"), f"{where}[0].error_data.details")
    if details == title:
        details = None
    return ": ".join(text for text in (title, details) if text) or None


def _unsupported(message: dict[str, Any], where: str) -> str:
    reason = error_text(as_list(message.get("errors"), f"{where}.errors"), f"{where}.errors")
    return f"Unsupported message: {reason}" if reason else "Unsupported message"


def _contacts(message: dict[str, Any], where: str) -> Content:
    # Here "contacts" is the list of shared contact cards, not an object.
    shared = as_list(message.get("contacts"), where)
    names: list[str] = []
    for k, raw_card in enumerate(shared):
        card = as_object(raw_card, f"{where}[{k}]")
        card_name = opt_object(card.get("name"), f"{where}[{k}].name") or {}
        formatted = opt_str(card_name.get("formatted_name"), f"{where}[{k}].name")
        if formatted:
            names.append(formatted)
    return ", ".join(names) or "Shared contact", [], {"contacts": shared}


def _media(kind: str, media: dict[str, Any], where: str) -> Content:
    attachment: dict[str, Any] = {"type": kind}
    for source, target in (
        ("id", "media_id"),
        ("mime_type", "mime_type"),
        ("sha256", "sha256"),
        ("caption", "caption"),
        ("filename", "filename"),
        ("url", "url"),
    ):
        text = opt_str(media.get(source), f"{where}.{source}")
        if text:
            attachment[target] = text
    for flag in ("voice", "animated"):
        if flag in media:
            attachment[flag] = opt_bool(media.get(flag), f"{where}.{flag}")
    content = attachment.get("caption", "")
    if not content:
        if kind == "document":
            content = attachment.get("filename", "")
        elif kind == "sticker":
            content = "Sticker"
        elif kind == "audio" and attachment.get("voice"):
            content = "Voice message"
    return content, [attachment], {}


def _text(part: dict[str, Any], where: str) -> Content:
    body = opt_str(part.get("body"), f"{where}.body")
    if not body:
        raise PayloadError("a text message needs a body", f"{where}.body")
    return body, [], {}


def _location(location: dict[str, Any], where: str) -> Content:
    latitude = opt_number(location.get("latitude"), f"{where}.latitude")
    longitude = opt_number(location.get("longitude"), f"{where}.longitude")
    fields = {
        key: opt_str(location.get(key), f"{where}.{key}") for key in ("name", "address", "url")
    }
    kept = {
        "latitude": latitude,
        "longitude": longitude,
        **{key: text for key, text in fields.items() if text},
    }
    label = ", ".join(text for text in (fields["name"], fields["address"]) if text)
    if not label and latitude is not None and longitude is not None:
        label = f"{latitude}, {longitude}"
    return label or "Location", [], {"location": kept}


def _interactive(interactive: dict[str, Any], where: str) -> Content:
    reply_kind = opt_str(interactive.get("type"), f"{where}.type") or ""
    reply = opt_object(interactive.get(reply_kind), f"{where}.{reply_kind}") or {}
    reply_where = f"{where}.{reply_kind}"
    title = opt_str(reply.get("title"), f"{reply_where}.title")
    description = opt_str(reply.get("description"), f"{reply_where}.description")
    body = opt_str(reply.get("body"), f"{reply_where}.body")
    if title and description:
        text = f"{title} — {description}"
    else:
        text = title or body or description or "Interactive reply"
    return text, [], {"interactive": interactive}


def _button(button: dict[str, Any], where: str) -> Content:
    text = opt_str(button.get("text"), f"{where}.text") or opt_str(
        button.get("payload"), f"{where}.payload"
    )
    return text or "Button reply", [], {"button": button}


def _order(order: dict[str, Any], where: str) -> Content:
    items: list[str] = []
    total = Decimal(0)
    currencies: set[str] = set()
    priced = True
    for k, raw_item in enumerate(as_list(order.get("product_items"), f"{where}.product_items")):
        item_where = f"{where}.product_items[{k}]"
        item = as_object(raw_item, item_where)
        sku = opt_str(item.get("product_retailer_id"), f"{item_where}.product_retailer_id")
        quantity = _decimal(item.get("quantity"), f"{item_where}.quantity")
        price = _decimal(item.get("item_price"), f"{item_where}.item_price")
        currency = opt_str(item.get("currency"), f"{item_where}.currency") or ""
        line = f"{_plain(quantity) if quantity is not None else '?'} × {sku or 'item'}"  # noqa: RUF001
        if price is not None:
            line += f" at {price:.2f} {currency}".rstrip()
        items.append(line)
        if price is None or quantity is None:
            priced = False
        else:
            total += price * quantity
            currencies.add(currency)
    text = "Order: " + (", ".join(items) if items else "no items")
    # A total only adds up in one currency.
    if items and priced and len(currencies) == 1:
        text += f" — total {total:.2f} {currencies.pop()}".rstrip()
    note = opt_str(order.get("text"), f"{where}.text")
    if note:
        text += f". Note: {note}"
    return text, [], {"order": order}


def _decimal(value: Any, where: str) -> Decimal | None:
    number = opt_number(value, where)
    if number is None:
        return None
    # Prices and quantities, not exponents: a huge one would print a huge line.
    if abs(number) >= 1e12:
        raise PayloadError("number out of range", where)
    # Through str: 9.99 stays 9.99, not its binary neighbour.
    return Decimal(str(number))


def _plain(number: Decimal) -> str:
    return str(number.quantize(Decimal(1))) if number == number.to_integral() else str(number)


_READERS = {
    "text": _text,
    "location": _location,
    "interactive": _interactive,
    "button": _button,
    "order": _order,
}
