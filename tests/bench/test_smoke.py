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


@pytest.mark.redis
def test_a_short_soak_loses_and_repeats_nothing_across_reconnects(tmp_path: Path) -> None:
    from bench.soak import main as soak

    # Its own redis-server: pub/sub channels are shared by every database of a server.
    out = tmp_path / "soak.json"
    code = soak([
        "--minutes", "0.15", "--clients", "8", "--rate", "10", "--rest-rate", "5",
        "--reconnects", "4", "--sample", "3", "--out", str(out),
    ])

    result = json.loads(out.read_text())
    assert code == 0
    assert result["webhooks_acknowledged"] == result["webhooks_sent"] > 0
    assert result["reconnects"] > 0 and result["sockets_at_end"] == 8
    assert result["lost"] == result["duplicates"] == result["out_of_order"] == 0
    assert result["deliveries"] == 8 * result["webhooks_acknowledged"]
    assert result["rest_ok"] > 0 and result["rest_errors"] == 0
    assert result["rss_mib"]["max"] > 0 and result["fds"]["max"] > 0
