"""The pages the service serves, opened in a real browser: everything they load comes
from the service itself, and its Content-Security-Policy never has to refuse anything."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.server import ConsoleServer

# A `securitypolicyviolation` listener installed before any page script runs: Chromium
# also logs these as console errors, but this names the directive that refused.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def watch_hosts(page: Any, server: ConsoleServer) -> list[str]:
    """Every URL the page asks for that is not the service; such requests are aborted,
    so a page that would reach out to a CDN fails here instead of on a closed network."""
    own = urlsplit(server.url).netloc
    outside: list[str] = []

    def route(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == own:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", route)
    page.add_init_script(RECORD_VIOLATIONS)
    return outside


def test_the_api_reference_renders_from_the_service_alone(
    console_server: ConsoleServer, new_page: Any, screenshot: Any
) -> None:
    page = new_page()
    outside = watch_hosts(page, console_server)

    response = page.goto(console_server.url + "/docs")
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "'unsafe-eval'" not in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]

    # Swagger UI has read /openapi.json: the title and an operation are on the page.
    expect(page.get_by_role("heading", name="Unified Inbox")).to_be_visible()
    expect(page.get_by_text("/api/conversations").first).to_be_visible()
    screenshot(page, "api-reference")

    assert outside == []
    assert page.evaluate("window.__violations") == []
    assert problems(page).errors == []


def test_the_console_loads_under_its_policy_without_an_error(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    page = new_page()
    outside = watch_hosts(page, console_server)

    response = page.goto(console_server.url + "/")
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    # Signed in, every module of the console has loaded and the socket is open.
    signed_in(page, console_server.agent)
    expect(page.get_by_role("status", name="Connection")).to_have_text("Live")

    assert outside == []
    assert page.evaluate("window.__violations") == []
    assert problems(page).errors == []
