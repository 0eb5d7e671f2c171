from __future__ import annotations

import pytest

from connectors.registry import ADAPTERS, adapter_for
from connectors.settings import KINDS


def test_every_kind_has_an_adapter() -> None:
    assert set(ADAPTERS) == set(KINDS) == {"whatsapp", "instagram", "sms", "generic"}
    for kind in KINDS:
        assert adapter_for(kind).kind == kind


def test_unknown_kind() -> None:
    with pytest.raises(KeyError):
        adapter_for("telegram")
