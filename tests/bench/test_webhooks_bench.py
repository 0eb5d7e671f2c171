"""`python -m bench.webhooks` end to end on a tiny workload: every event reaches the
receiver, in the ingest rounds and from the backlog."""

from __future__ import annotations

import json

import pytest

from bench.webhooks import main


def test_a_tiny_run_reports_every_event_delivered(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events", "40", "--chunks", "2", "--concurrency", "4"]) == 0

    result = json.loads(capsys.readouterr().out)
    assert result["delivered_while_ingesting"] == result["backlog_delivered"] == 40
    assert result["backlog_deliveries_per_s"] > 0
    assert result["lag_ms_median"] > 0
