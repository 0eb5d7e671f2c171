"""When a failed webhook delivery is tried again, and how the schedule is configured."""

from __future__ import annotations

import pytest

from inbox.services.webhooks.schedule import JITTER, retry_delay
from inbox.settings import ConfigError, load_settings


def test_each_retry_waits_its_delay_give_or_take_the_jitter() -> None:
    schedule = [5.0, 60.0, 300.0]
    for attempts, base in enumerate(schedule, start=1):
        delay = retry_delay(schedule, attempts)
        assert delay is not None
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
    assert retry_delay(schedule, len(schedule) + 1) is None


def test_retry_after_is_honoured_up_to_the_longest_delay() -> None:
    assert retry_delay([1.0, 2.0], 1, retry_after=1.5) == 1.5
    assert retry_delay([1.0, 2.0], 1, retry_after=3600) == 2.0


def test_the_schedule_is_read_as_comma_separated_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INBOX_ENV", "development")
    monkeypatch.setenv("INBOX_WEBHOOK_RETRY_SCHEDULE", "1, 2.5,10")
    assert load_settings().webhook_retry_schedule == [1.0, 2.5, 10.0]
    assert load_settings().webhook_allow_private is False
    monkeypatch.setenv("INBOX_WEBHOOK_RETRY_SCHEDULE", "soon")
    with pytest.raises(ConfigError, match="INBOX_WEBHOOK_RETRY_SCHEDULE"):
        load_settings()
