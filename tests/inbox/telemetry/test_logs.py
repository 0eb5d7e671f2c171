"""INBOX_LOG_FORMAT=json: one JSON object per line, naming the request that caused it
wherever in the process it was written, and never a credential."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from inbox.telemetry.logs import RefusedHandshakeFilter, handler_for
from tests.inbox.platforms import post_meta, whatsapp_channel, whatsapp_text

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
API_KEY = "ibx_live_0123456789abcdefghij"


class JsonLines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def of(self, request_id: str, count: int) -> list[dict[str, Any]]:
        """The lines naming ``request_id``, once there are ``count`` of them (a line of
        the group commit names every request of its batch, comma-separated)."""
        deadline = time.monotonic() + 10
        while True:
            lines = [json.loads(line) for line in self.stream.getvalue().splitlines()]
            mine = [line for line in lines if request_id in (line["request_id"] or "").split(",")]
            if len(mine) >= count:
                return mine
            assert time.monotonic() < deadline, lines
            time.sleep(0.02)


@pytest.fixture()
def json_logs() -> Iterator[JsonLines]:
    """The service's lines as INBOX_LOG_FORMAT=json writes them, the group commit's
    debug lines included."""
    stream = io.StringIO()
    handler = handler_for("json", stream)
    inbox = logging.getLogger("inbox")
    names = ("inbox.access", "inbox.group_commit")
    levels = {name: logging.getLogger(name).level for name in names}
    inbox.addHandler(handler)
    logging.getLogger("inbox.access").setLevel(logging.INFO)
    logging.getLogger("inbox.group_commit").setLevel(logging.DEBUG)
    try:
        yield JsonLines(stream)
    finally:
        inbox.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_a_webhook_s_lines_carry_its_request_id_through_the_group_commit(
    service, tenant, json_logs
):
    channel = whatsapp_channel(tenant)
    body = whatsapp_text(channel, "wamid.logs-1", "hello")
    client = service.client()
    client.headers["X-Request-Id"] = "webhook-rid-1"

    assert post_meta(service, "whatsapp", body, channel.secret, client).status_code == 200

    lines = json_logs.of("webhook-rid-1", 2)
    by_logger = {line["logger"]: line for line in lines}
    access = by_logger["inbox.access"]
    assert access["level"] == "INFO"
    assert (access["route"], access["status"]) == ("/webhooks/whatsapp", 200)
    assert isinstance(access["duration_ms"], float)
    assert access["time"].endswith("+00:00")
    commit = by_logger["inbox.group_commit"]
    assert commit["message"].startswith("committed ")
    assert "webhook-rid-1" in commit["request_id"].split(",")


def test_credentials_never_reach_a_json_line(service, tenant, json_logs):
    client = service.client()
    client.headers["X-Request-Id"] = "secret-rid-1"

    client.get(f"/api/conversations?token={JWT}&api_key={API_KEY}")

    [access] = json_logs.of("secret-rid-1", 1)
    assert JWT not in json.dumps(access) and API_KEY not in json.dumps(access)
    assert "token=[redacted]" in access["message"]


def test_a_credential_in_any_line_or_its_traceback_is_hidden():
    stream = io.StringIO()
    handler = handler_for("json", stream)
    log = logging.getLogger("inbox.test_json_redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError(f"refused {API_KEY}")
        except ValueError:
            log.exception("a client sent %s and %s", JWT, API_KEY, extra={"kind": "whatsapp"})
    finally:
        log.removeHandler(handler)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]

    assert JWT not in stream.getvalue() and API_KEY not in stream.getvalue()
    assert line["message"] == "a client sent [redacted] and [redacted]"
    assert line["kind"] == "whatsapp"
    assert line["request_id"] is None
    assert "ValueError: refused [redacted]" in line["exception"]


def test_uvicorn_s_error_for_a_refused_handshake_becomes_a_warning_that_says_why(caplog):
    try:
        raise ConnectionResetError("peer went away mid-handshake")
    except ConnectionResetError:
        record = logging.getLogger("uvicorn.error").makeRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "opening handshake failed", (),
            sys.exc_info(),
        )
    other = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "other", (), None)

    with caplog.at_level(logging.INFO, logger="inbox.ws"):
        kept = RefusedHandshakeFilter().filter(record)

    assert not kept
    [line] = [r for r in caplog.records if r.name == "inbox.ws"]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        "WebSocket handshake refused: ConnectionResetError: peer went away mid-handshake"
    )
    assert RefusedHandshakeFilter().filter(other)
