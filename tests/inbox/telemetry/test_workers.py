"""`inbox serve --workers 2`: one scrape sums both processes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.inbox.telemetry.scraping import value
from tests.inbox.test_cli import Cli, clean_env, inbox_executable
from tests.inbox.test_cli_first_day import start

REQUESTS = 24


def test_one_scrape_covers_every_worker(tmp_path: Path, redis_url: str) -> None:
    cli = Cli(tmp_path, clean_env(f"sqlite:///{tmp_path / 'inbox.db'}"))
    cli.env.update(INBOX_REDIS_URL=redis_url, INBOX_LOG_FORMAT="json")
    try:
        served = start(cli, inbox_executable(), "--workers", "2")
        # Each on a connection of its own, so that both processes take some.
        for _ in range(REQUESTS):
            assert httpx.get(f"{served.url}/openapi.json").status_code == 200
        scraped = httpx.get(f"{served.url}/metrics").text
        served.terminate()
    finally:
        cli.close()

    assert value(scraped, "inbox_server_processes") == 2
    ok = {"route": "/openapi.json", "method": "GET", "status": "200"}
    assert value(scraped, "inbox_http_requests_total", **ok) == REQUESTS
    lines = [json.loads(line) for line in served.output().splitlines() if line.startswith("{")]
    served_lines = [line for line in lines if line.get("route") == "/openapi.json"]
    assert len(served_lines) == REQUESTS
    assert all(line["request_id"] and line["status"] == 200 for line in served_lines)
    # uvicorn's own lines are JSON too, and its access log (which would not redact) stays off.
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    assert not any(line["logger"] == "uvicorn.access" for line in lines)
