"""Bodies nested deeper than anything reads: a 400 or a 422 with the error envelope,
never a 500, on any route, with no traceback in the log and the status in the access log.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from inbox.web.redaction import redact_query

JSON = {"Content-Type": "application/json"}


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"] and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return dict(body["error"])


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.fixture()
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the service, uvicorn's included, and its access log."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="inbox.access")
    try:
        yield caplog
    finally:
        uvicorn_log.removeHandler(caplog.handler)


def statuses(caplog: pytest.LogCaptureFixture, path: str, count: int) -> list[str]:
    """The statuses the access log shows for requests to ``path``, once there are ``count``."""
    deadline = time.monotonic() + 10
    while True:
        found = [
            r.getMessage().rsplit('" ', 1)[1].split()[0]
            for r in caplog.records
            if r.name == "inbox.access" and f' {path}"' in r.getMessage()
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, (record.name, record.getMessage())
        assert record.levelno < logging.ERROR, (record.name, record.getMessage())


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(arrays(100_000), id="100k-arrays"),
        pytest.param(b'{"a":' * 2000, id="2000-objects-unclosed"),
        pytest.param(b'{"email": "a@b.example", "password": "x", "a": ' + arrays(1025) + b"}",
                     id="1025-inside-an-object"),
    ],
)
def test_a_body_deeper_than_the_parser_reads_is_a_400_on_login(service, logs, body):
    r = service.client().post("/api/auth/login", content=body, headers=JSON)
    error = assert_error(r, 400, "MALFORMED_REQUEST")
    assert error["message"] == "Request body is nested deeper than 1024 levels"
    assert statuses(logs, "/api/auth/login", 1) == ["400"]
    no_traceback(logs)


def test_a_body_the_parser_reads_but_python_could_not_recurse_through_is_no_500(
    service, tenant, logs
):
    # 1000 levels: within orjson's 1024, past Python's recursion limit.
    deep = b'{"email": "a@b.example", "password": "x", "a": ' + arrays(1000) + b"}"
    r = service.client().post("/api/auth/login", content=deep, headers=JSON)
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert [f["field"] for f in error["details"]["fields"]] == ["a"]
    # A field that takes free-form JSON names the bound it broke.
    contact = b'{"name": "Deep", "custom_fields": {"x": ' + arrays(1000) + b"}}"
    r = tenant.api.post("/api/contacts", content=contact, headers=JSON)
    error = assert_error(r, 422, "VALIDATION_ERROR")
    assert error["details"]["fields"] == [
        {"field": "custom_fields", "message": "nested deeper than 16 levels",
         "type": "json_too_deep"}
    ]
    assert tenant.api.get("/api/contacts").json()["pagination"]["total"] == 0
    assert statuses(logs, "/api/auth/login", 1) == ["422"]
    assert statuses(logs, "/api/contacts", 2) == ["422", "200"]
    no_traceback(logs)


def test_a_nul_character_deep_in_a_body_is_still_named(tenant):
    body = b'{"name": "N", "custom_fields": {"a": [' * 1 + b'"ok", {"b": "x\\u0000"}]}}'
    error = assert_error(tenant.api.post("/api/contacts", content=body, headers=JSON),
                         422, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == "custom_fields.a.1.b"
    # As deep as the parser goes, the field is still found, without recursion.
    deep = b'{"notes": ' + b"[" * 1000 + b'"\\u0000"' + b"]" * 1000 + b"}"
    error = assert_error(tenant.api.post("/api/leads", content=deep, headers=JSON),
                         422, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == "notes" + ".0" * 1000


def logged(path: str) -> str:
    """A path as the access log shows it."""
    path, question, query = path.partition("?")
    return path + question + redact_query(query)


def json_routes(tenant: Any) -> list[tuple[str, str]]:
    """(method, path) of every route that reads a JSON body: the API's, and the webhooks'
    a caller can reach with a JSON body (the lead form with its key)."""
    from inbox.api import OPERATIONS

    form_key = tenant.api.post("/api/organization/lead-form-key").json()["lead_form_key"]
    routes = [
        (op.method, re.sub(r"{\w+:int}", "1", op.path)) for op in OPERATIONS if op.body is not None
    ]
    return [
        *routes,
        ("POST", "/webhooks/whatsapp"),
        ("POST", "/webhooks/instagram"),
        ("POST", f"/webhooks/leads/incoming?key={form_key}"),
    ]


@pytest.mark.parametrize(
    "body",
    [pytest.param(arrays(100_000), id="arrays"), pytest.param(b'{"a":' * 5000, id="objects")],
)
def test_every_json_route_answers_a_body_too_deep_with_a_400_logged_once(
    service, tenant, logs, body
):
    routes = json_routes(tenant)
    logs.clear()

    for method, path in routes:
        r = tenant.api.request(method, path, content=body, headers=JSON)
        assert_error(r, 400, "MALFORMED_REQUEST")

    # Each request logged once, with its status (a line of the setup may come late).
    requests = [f'"{method} {logged(path)}" ' for method, path in routes]
    deadline = time.monotonic() + 10
    while True:
        lines = [
            r.getMessage()
            for r in logs.records
            if r.name == "inbox.access" and any(q in r.getMessage() for q in requests)
        ]
        if len(lines) >= len(routes) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(lines) == len(routes), lines
    for request, line in zip(requests, lines, strict=True):
        assert request + "400 " in line, line
    no_traceback(logs)
