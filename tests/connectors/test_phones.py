from __future__ import annotations

import pytest

from connectors.phones import ImpossibleNumber, NotAPhoneNumber, parse_e164, to_e164


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("16505551234", None, "+16505551234"),  # WhatsApp wa_id: no "+"
        ("+1 (650) 555-1234", None, "+16505551234"),
        ("+15550123456", None, "+15550123456"),  # fictional 555 range still matches
        ("447911123456", None, "+447911123456"),
        ("0044 7911 123456", None, "+447911123456"),
        ("(650) 555-1234", "US", "+16505551234"),
        ("07911 123456", "GB", "+447911123456"),
        ("(650) 555-1234", None, None),  # national number, no region: unknown country
        ("+1555", None, None),
        ("not a phone", None, None),
        ("", None, None),
        (None, None, None),
        ("1" * 100, None, None),
    ],
)
def test_to_e164(value: str | None, region: str | None, expected: str | None) -> None:
    assert to_e164(value, region) == expected


def test_read_as_written_a_number_without_its_country_is_refused_with_the_reason() -> None:
    assert parse_e164("+1 (650) 555-1234") == "+16505551234"
    with pytest.raises(NotAPhoneNumber):
        parse_e164("16505551234")  # bare digits are national without a region
    with pytest.raises(ImpossibleNumber):
        parse_e164("+44 12")
