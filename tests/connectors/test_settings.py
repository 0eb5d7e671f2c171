"""Channel settings: each adapter takes its own kind's, and says so when handed another."""

from __future__ import annotations

import pytest

from connectors.settings import GenericSettings, SmsSettings, expect

SMS = SmsSettings(phone_number="+15550001111", account_sid="AC" + "0" * 32, auth_token="token")


def test_an_adapter_gets_its_own_kind_of_settings_back_typed() -> None:
    assert expect(SmsSettings, SMS) is SMS


def test_another_kind_is_a_type_error_naming_both() -> None:
    with pytest.raises(TypeError, match="expected SmsSettings, got GenericSettings"):
        expect(SmsSettings, GenericSettings())
