"""Every group commit made by these tests checks its units' writes against their keys."""

from __future__ import annotations

import pytest

from inbox.services.group_commit.key_check import ENVIRONMENT


@pytest.fixture(autouse=True)
def write_keys_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT, "1")
