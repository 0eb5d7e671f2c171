"""The pages the service serves itself: the console at `/`, its files, the API reference;
from the installed package, with no request leaving for a CDN, under a strict CSP."""

from __future__ import annotations

import re
from importlib.resources import files

import httpx
import pytest

STATIC = files("inbox") / "web" / "static"


def test_the_console_is_served_at_the_root(service):
    r = httpx.get(f"{service.url}/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert '<script type="module"' in r.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console/app.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
        ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("/static/vendor/swagger-ui/swagger-ui.css", "text/css"),
    ],
)
def test_static_files_have_their_type_and_revalidate_with_an_etag(service, path, content_type):
    r = httpx.get(f"{service.url}{path}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(content_type)
    assert r.headers["x-content-type-options"] == "nosniff"
    again = httpx.get(f"{service.url}{path}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/console/../settings.py",
        "/console/%2e%2e/%2e%2e/settings.py",
        "/console/..%2f..%2fsettings.py",
        "/static/..%5c..%5csettings.py",
        "/console//etc/passwd",
        "/console/missing.js",
    ],
)
def test_nothing_outside_the_static_folders_is_served(service, path):
    r = httpx.get(f"{service.url}{path}")
    assert r.status_code == 404
    assert "SIGNING" not in r.text and "import" not in r.text


def test_the_pages_load_nothing_from_another_origin_and_run_no_inline_script(service):
    for page in ("/", "/docs", "/dashboard"):
        html = httpx.get(f"{service.url}{page}").text
        assert not re.search(r"(src|href)=\"(https?:)?//", html), page
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
            assert script.strip() == "", page


def test_the_installed_package_holds_the_pages_and_the_vendored_licence():
    for name in (
        "console/index.html",
        "console/app.js",
        "docs/index.html",
        "dashboard/index.html",
        "dashboard/dashboard.js",
        "dashboard/charts.js",
        "docs/docs.js",
        "vendor/swagger-ui/swagger-ui-bundle.js",
        "vendor/swagger-ui/LICENSE",
        "vendor/swagger-ui/VERSION",
    ):
        assert (STATIC / name).is_file(), name


def test_the_console_stays_small():
    """JavaScript and CSS of the console, uncompressed: under 150 KB."""
    console = STATIC / "console"
    size = sum(len(f.read_bytes()) for f in console.iterdir() if f.name.endswith((".js", ".css")))
    assert size < 150 * 1024, size


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard?kiosk=1"])
def test_the_dashboard_is_served_under_the_strict_policy(service, path):
    r = httpx.get(f"{service.url}{path}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "unsafe" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/dashboard/dashboard.js">' in r.text


def test_the_dashboard_stays_small():
    """JavaScript and CSS of the dashboard, uncompressed: under 60 KB (no charting library)."""
    folder = STATIC / "dashboard"
    size = sum(len(f.read_bytes()) for f in folder.iterdir() if f.name.endswith((".js", ".css")))
    assert size < 60 * 1024, size
