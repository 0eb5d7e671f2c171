"""Credentials never reach a log line, however the client spelled the parameter that
carried them; and /ws takes a credential only under its exact name."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from inbox.web.redaction import redact_query
from tests.inbox.live.wsclient import open_ws, ready, refusal, rest

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.fixture()
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the service at INFO, uvicorn's own handshake lines included."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="inbox.access")
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    try:
        yield caplog
    finally:
        uvicorn_log.removeHandler(caplog.handler)


def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    """The access log's lines, once there are ``count`` of them."""
    deadline = time.monotonic() + 10
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "inbox.access"]
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, lines
        time.sleep(0.02)


def assert_nowhere(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for record in caplog.records:
        line = record.getMessage()
        for secret in secrets:
            assert secret not in line, (record.name, line)


@pytest.mark.parametrize("name", ["tok%65n", "%74oken", "to%6Ben", "tok%2565n"])
async def test_a_token_under_an_escaped_name_is_refused_and_not_logged(
    service, tenant, logs, name
):
    token = service.token_for(tenant.owner)

    status, error = await refusal(service.url, query=f"{name}={token}&last_event_id=0")

    assert (status, error["code"]) == (400, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == name
    assert error["message"] == f"{name}: write the parameter's name without escapes"
    [line] = access_lines(logs, 1)
    assert f'"WS /ws?{name}=[redacted]&last_event_id=0" 400' in line
    assert_nowhere(logs, token)


async def test_a_ticket_under_an_escaped_name_is_not_used_up(service, tenant, logs):
    async with rest(service.url, service.token_for(tenant.owner)) as api:
        ticket = (await api.post("/api/realtime/tickets")).json()["ticket"]

    status, _ = await refusal(service.url, query=f"tick%65t={ticket}")
    assert status == 400
    # Refused before it was looked at: the ticket still opens a socket, once.
    async with await open_ws(service.url, query=f"ticket={ticket}") as ws:
        await ready(ws)
    lines = access_lines(logs, 3)
    assert any('"WS /ws?tick%65t=[redacted]" 400' in line for line in lines), lines
    assert any('"WS /ws?ticket=[redacted]" 101' in line for line in lines), lines
    assert_nowhere(logs, ticket)


def test_credentials_in_any_query_of_any_route_stay_out_of_the_log(service, tenant, logs):
    token = service.token_for(tenant.owner)
    api_key = tenant.api_key()
    form_key = tenant.api.post("/api/organization/lead-form-key").json()["lead_form_key"]
    client = service.client()
    logs.clear()

    # Unknown parameters of the REST API: refused, and still not logged in clear.
    assert client.get(f"/api/leads?x={token}").status_code == 401
    assert tenant.api.get(f"/api/leads?api%5Fkey={api_key}").status_code == 422
    assert tenant.api.get(f"/api/leads?TOKEN={token}").status_code == 422
    # The lead form reads its key under an escaped name too; the log hides it all the same.
    posted = client.post(f"/webhooks/leads/incoming?k%65y={form_key}", data={"name": "Ada"})
    assert posted.status_code == 201, posted.text

    lines = access_lines(logs, 4)
    assert "/api/leads?x=[redacted]" in lines[0]
    assert "/api/leads?api%5Fkey=[redacted]" in lines[1]
    assert "/api/leads?TOKEN=[redacted]" in lines[2]
    assert "/webhooks/leads/incoming?k%65y=[redacted]" in lines[3]
    assert_nowhere(logs, token, api_key, form_key)


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("token=abc&last_event_id=7", "token=[redacted]&last_event_id=7"),
        ("/ws?TOK%45N=abc", "/ws?TOK%45N=[redacted]"),
        ("/ws?a=1;token=abc", "/ws?a=1;token=[redacted]"),
        ("hub.mode=subscribe&hub.verify_token=v&hub.challenge=9",
         "hub.mode=subscribe&hub.verify_token=[redacted]&hub.challenge=9"),
        (f"/ws?events=lead.created&anything={JWT}", "/ws?events=lead.created&anything=[redacted]"),
        (f"/ws?{JWT}", "/ws?[redacted]"),
        ("/ws?x=ibx_0123456789abcdef", "/ws?x=[redacted]"),
        (f"/files/{JWT}/a?page=2", "/files/[redacted]/a?page=2"),
        ("/api/leads?status=new&limit=5", "/api/leads?status=new&limit=5"),
    ],
)
def test_what_a_log_line_shows_of_a_query(logged, shown):
    assert redact_query(logged) == shown
