"""The benchmark suite, end to end on a tiny workload: the generator, the service, the
reference server and the report all work together (the real runs are `make bench`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main


@pytest.mark.redis
def test_a_tiny_fanout_run_reports_every_event_delivered(tmp_path: Path, redis_url: str) -> None:
    code = main([
        "--quick", "--only", "fanout", "--runs", "1", "--clients", "10", "--duration", "1",
        "--rates", "20", "--drivers", "whatsapp", "--no-stalled", "--no-pin",
        "--redis-url", redis_url, "--out", str(tmp_path),
    ])

    assert code == 0
    entries = json.loads((tmp_path / "quick.json").read_text())["entries"]
    service, reference = entries
    assert service["server"].startswith("service") and reference["server"] == "reference"
    for entry in entries:
        figures = entry["figures"]
        assert figures["deliveries_per_s"]["median"] > 0
        assert figures["lost"]["max"] == figures["duplicates"]["max"] == 0
        assert figures["p99_ms"]["median"] > 0
    assert service["figures"]["out_of_order"]["max"] == 0
    assert service["vs_reference"]["deliveries_per_s"]["median"] > 0
    assert (tmp_path / "quick.md").read_text().startswith("# Benchmark results")
