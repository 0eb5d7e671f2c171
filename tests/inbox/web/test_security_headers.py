"""Every answer carries the security headers; pages get a CSP with no inline script and
no eval, and may not be framed."""

from __future__ import annotations

import httpx
import pytest


def policy(response: httpx.Response) -> dict[str, str]:
    directives = response.headers["content-security-policy"].split(";")
    return {d.split()[0]: d.strip() for d in directives if d.strip()}


@pytest.mark.parametrize(
    "path", ["/", "/docs", "/api/auth/me", "/nowhere", "/livez", "/console/app.js"]
)
def test_every_answer_carries_the_security_headers(service, path):
    r = httpx.get(f"{service.url}{path}")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"
    csp = policy(r)
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["script-src"] == "script-src 'self'"
    assert "unsafe-eval" not in r.headers["content-security-policy"]
    assert csp["object-src"] == "object-src 'none'"


def test_only_the_api_reference_may_use_inline_styles(service):
    assert "'unsafe-inline'" in policy(httpx.get(f"{service.url}/docs"))["style-src"]
    assert policy(httpx.get(f"{service.url}/"))["style-src"] == "style-src 'self'"


def test_a_webhook_answer_carries_them_too(service):
    r = httpx.post(f"{service.url}/webhooks/whatsapp", content=b"{}")
    assert r.status_code == 401
    assert r.headers["x-content-type-options"] == "nosniff"
