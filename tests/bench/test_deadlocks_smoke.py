"""The two-process deadlock load, end to end on a tiny mix: both services take every
kind of request it sends and the figures come out (the real run is
`python -m bench.deadlocks`, 10,000 requests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.deadlocks.__main__ import main


@pytest.mark.postgres
@pytest.mark.redis
def test_a_tiny_two_process_run_answers_every_request_and_counts_deadlocks(
    tmp_path: Path, postgres_server_url: str, redis_url: str
) -> None:
    out = tmp_path / "deadlocks.json"
    code = main([
        "--requests", "150", "--senders", "6", "--concurrency", "8",
        "--postgres-url", postgres_server_url, "--redis-url", redis_url, "--out", str(out),
    ])

    assert code == 0
    result = json.loads(out.read_text())
    assert result["server_errors_5xx"] == 0, result["failure_samples"]
    assert result["failures"] == {}
    assert result["transport_errors"] == 0
    assert result["requests"] >= 150
    assert result["webhook_deliveries"] > 0 and result["rest_requests"] > 0
    assert isinstance(result["deadlocks"], int)
    assert result["deadlocks_per_10k_deliveries"] >= 0
