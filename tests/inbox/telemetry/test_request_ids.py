"""Every answer carries X-Request-Id: the client's, when it is well-formed, else ours."""

from __future__ import annotations

import re

import pytest

GENERATED = re.compile(r"[0-9a-f]{22}")


@pytest.mark.parametrize("given", ["abc-123", "trace.2026_12_04-X", "a" * 128])
def test_a_well_formed_request_id_is_kept(service, given):
    response = service.client().get("/livez", headers={"X-Request-Id": given})

    assert response.headers["x-request-id"] == given


def test_a_request_without_one_gets_a_new_one_each_time(service):
    first = service.client().get("/livez").headers["x-request-id"]
    second = service.client().get("/livez").headers["x-request-id"]

    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("given", ["", "a" * 129, "has space", "new\\nline", "semi;colon", "ü"])
def test_a_malformed_request_id_is_replaced(service, given):
    response = service.client().get(
        "/livez", headers={"X-Request-Id": given.encode("utf-8")}  # type: ignore[dict-item]
    )

    assert GENERATED.fullmatch(response.headers["x-request-id"])


def test_errors_and_refusals_carry_it_too(service, tenant):
    refused = service.client().get("/api/conversations", headers={"X-Request-Id": "rid-401"})
    missing = tenant.api.get("/api/conversations/987654321", headers={"X-Request-Id": "rid-404"})
    too_large = service.client().post(
        "/api/auth/login", content=b"x" * (2 * 1024 * 1024), headers={"X-Request-Id": "rid-413"}
    )

    assert (refused.status_code, refused.headers["x-request-id"]) == (401, "rid-401")
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "rid-404")
    assert (too_large.status_code, too_large.headers["x-request-id"]) == (413, "rid-413")
