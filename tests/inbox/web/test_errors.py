"""Errors every client meets: oversized, malformed or mistyped bodies, unknown routes.

Each answers with the status and the error envelope, and stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

LIMIT = 1024 * 1024
CHUNK = 64 * 1024


def assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def lead_json(size: int) -> bytes:
    """A valid lead whose notes make the body exactly ``size`` bytes."""
    head, tail = b'{"name": "Big", "notes": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def leads_of(tenant: Any) -> list[dict[str, Any]]:
    return tenant.api.get("/api/leads").json()["data"]


def test_a_body_over_one_mebibyte_with_content_length_is_refused(tenant):
    body = lead_json(LIMIT + 1)
    r = tenant.api.post("/api/leads", content=body,
                        headers={"Content-Type": "application/json"})
    assert "content-length" in r.request.headers
    error = assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert str(LIMIT) in error["message"]
    assert leads_of(tenant) == []


def test_a_chunked_body_over_one_mebibyte_is_refused(tenant):
    body = lead_json(LIMIT + CHUNK)

    def stream() -> Iterator[bytes]:
        for start in range(0, len(body), CHUNK):
            yield body[start:start + CHUNK]

    r = tenant.api.post("/api/leads", content=stream(),
                        headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert leads_of(tenant) == []


def test_a_body_just_under_the_limit_is_accepted(tenant):
    # Notes are capped well below the body limit, so this is a validation error, not a 413.
    r = tenant.api.post("/api/leads", content=lead_json(LIMIT),
                        headers={"Content-Type": "application/json"})
    assert_error(r, 422, "VALIDATION_ERROR")
    assert leads_of(tenant) == []


@pytest.mark.parametrize(
    "raw", [b'{"name": "Half', b"{'name': 'single quotes'}", b"name=Ada", b"\xff\xfe"],
    ids=["truncated", "single quotes", "form encoded", "not utf-8"],
)
def test_malformed_json_is_a_malformed_request(tenant, raw):
    r = tenant.api.post("/api/leads", content=raw, headers={"Content-Type": "application/json"})
    error = assert_error(r, 400, "MALFORMED_REQUEST")
    assert "JSON" in error["message"]
    assert leads_of(tenant) == []


@pytest.mark.parametrize("raw", [b'[{"name": "Ada"}]', b'"Ada"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_a_malformed_request(tenant, raw):
    r = tenant.api.post("/api/leads", content=raw, headers={"Content-Type": "application/json"})
    error = assert_error(r, 400, "MALFORMED_REQUEST")
    assert "object" in error["message"]
    assert leads_of(tenant) == []


def test_an_empty_body_is_a_malformed_request(tenant):
    r = tenant.api.post("/api/leads", content=b"", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "MALFORMED_REQUEST")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_an_unsupported_media_type(tenant, content_type):
    r = tenant.api.post("/api/leads", content=b'{"name": "Ada"}',
                        headers={"Content-Type": content_type})
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert leads_of(tenant) == []


def test_json_with_a_charset_is_fine(tenant):
    r = tenant.api.post("/api/leads", content=b'{"name": "Ada"}',
                        headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text


def test_an_unknown_route_is_not_found_in_the_envelope(tenant):
    for path in ("/api/nothing-here", "/api/leads/not-a-number", "/nowhere"):
        assert_error(tenant.api.get(path), 404, "RESOURCE_NOT_FOUND")


def test_a_wrong_method_is_not_allowed_in_the_envelope(tenant):
    lead = tenant.api.post("/api/leads", json={"name": "Ada"}).json()
    for method, path, allowed in (
        ("DELETE", "/api/leads", "GET, HEAD, POST"),
        ("PUT", "/api/conversations", "GET, HEAD, POST"),
        ("POST", f"/api/leads/{lead['id']}", "DELETE, GET, HEAD, PATCH, PUT"),
        ("POST", "/livez", "GET, HEAD"),
    ):
        r = tenant.api.request(method, path)
        assert_error(r, 405, "METHOD_NOT_ALLOWED")
        assert r.headers.get("allow") == allowed, (method, path)
    assert [x["id"] for x in leads_of(tenant)] == [lead["id"]]


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
def test_liveness(service, path):
    r = service.client().get(path)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readiness_reports_the_database(service):
    r = service.client().get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["checks"]["database"] == "ok"
