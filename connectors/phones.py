"""Phone numbers to E.164, the one form contacts are matched on across channels."""

from __future__ import annotations

import functools

import phonenumbers

# Longer than any real number with formatting; refuse before parsing.
_MAX_INPUT = 64


class NotAPhoneNumber(ValueError):
    """The text does not parse as a phone number."""


class ImpossibleNumber(ValueError):
    """A phone number of no possible length for its country."""


def parse_e164(text: str, region: str | None = None) -> str:
    """``text`` as E.164, read as written: national numbers only with ``region``.

    Numbers are accepted when *possible* (right length for the country), not only
    when *valid* in the current numbering plan: platforms already checked them, the
    plan metadata lags behind real allocations, and fictional test ranges such as
    +1 555 must still match. NotAPhoneNumber or ImpossibleNumber otherwise.
    """
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise NotAPhoneNumber(text) from None
    if not phonenumbers.is_possible_number(number):
        raise ImpossibleNumber(text)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# The same senders write again and again: each is parsed once.
@functools.lru_cache(maxsize=4096)
def to_e164(value: str | None, default_region: str | None = None) -> str | None:
    """``value`` as E.164 (``+15550123456``), or None when it is not a phone number.

    A string of bare digits is read as international (WhatsApp ``wa_id`` has no
    ``+``) unless ``default_region`` (ISO 3166 code, e.g. ``"US"``) says how to
    read national numbers; a ``00`` prefix is read as ``+``.
    """
    if not value:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_INPUT:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    elif default_region is None and text.isdigit():
        text = "+" + text
    try:
        return parse_e164(text, default_region)
    except ValueError:
        return None
