"""Browser tests: Playwright driving Debian's Chromium against a real `inbox serve`.

Elements are found by role and accessible name, as a user finds them. Playwright's own
browser download is not used: the machine's Chromium is launched by path. Under
CI=true a missing browser fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser.server import ConsoleServer, User
from tests.connectors.fake_platform import FakePlatform
from tests.servers import IN_CI, unavailable

try:
    import playwright  # noqa: F401
except ImportError:
    # The test modules import Playwright: without it they are left out, as the browser
    # fixture skips; CI installs the dev extra, so there they fail to import, loudly.
    if not IN_CI:
        collect_ignore_glob = ["test_*.py"]

CHROMIUM = os.environ.get("INBOX_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Chromium on a closed network: nothing of its own reaches out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Generous for a 2-core machine running the suite in parallel; a passing wait returns
# as soon as its condition holds.
TIMEOUT_MS = 15_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed browser test reports the server's log and what the page complained of:
    on CI that is all there is to go on."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        server = funcargs.get("console_server")
        if isinstance(server, ConsoleServer):
            report.sections.append(("inbox serve log (last lines)", server.log_tail()))
        for page in item.stash.get(PAGES, []):
            watched = _PROBLEMS[page]
            if watched.errors or watched.dialogs:
                text = "\n".join([*watched.errors, *(f"dialog: {d}" for d in watched.dialogs)])
                report.sections.append((f"page {page.url}", text))
    return report


@pytest.fixture(scope="module")
def fake_platform() -> Iterator[FakePlatform]:
    with FakePlatform() as platform:
        yield platform


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, fake_platform: FakePlatform
) -> Iterator[ConsoleServer]:
    server = ConsoleServer(tmp_path_factory.mktemp("console"), fake_platform)
    try:
        server.seed()
        server.start()
        server.seed_after_start()
        yield server
    finally:
        server.close()


# Per test module, not per session: Playwright's sync API keeps an asyncio loop running
# on this thread while it is started, and the async tests an xdist worker runs after its
# browser tests would find it there ("cannot be called from a running event loop").
# With --dist loadfile a module runs whole on one worker, so it launches Chromium once.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class Problems:
    """What went wrong on a page: console errors (CSP violations among them), uncaught
    exceptions, and dialogs (an alert() would mean injected script ran)."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


_PROBLEMS: weakref.WeakKeyDictionary[Any, Problems] = weakref.WeakKeyDictionary()
# The pages a test opened, for its failure report.
PAGES = pytest.StashKey[list[Any]]()


def problems(page: Any) -> Problems:
    return _PROBLEMS[page]


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """A fresh browser context (its own cookies) and page, watched: ``problems(page)``."""
    contexts: list[Any] = []
    pages = request.node.stash.setdefault(PAGES, [])

    def make(**context_options: Any) -> Any:
        context = browser.new_context(**context_options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        watched = _PROBLEMS[page] = Problems()
        pages.append(page)

        def on_console(message: Any) -> None:
            # An answer of 401 or 403 is the API speaking (the sign-in check, an agent
            # asking for what only admins see), which Chromium logs too; script errors
            # and CSP violations are what count.
            if message.type == "error" and not message.text.startswith(
                "Failed to load resource"
            ):
                watched.errors.append(message.text)

        def on_dialog(dialog: Any) -> None:
            watched.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("console", on_console)
        page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
        page.on("dialog", on_dialog)
        return page

    yield make
    for context in contexts:
        context.close()
    pages.clear()


def sign_in(page: Any, server: ConsoleServer, user: User) -> None:
    """Through the sign-in form, as the user does, until the list is there."""
    page.goto(server.url + "/")
    page.get_by_role("textbox", name="Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("list", name="Conversations").or_(
        page.get_by_role("listbox", name="Conversations")
    ).wait_for()


@pytest.fixture
def signed_in(console_server: ConsoleServer) -> Callable[[Any, User], None]:
    """``signed_in(page, console_server.agent)``."""
    return lambda page, user: sign_in(page, console_server, user)


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """``screenshot(page, "console")``: see ``take_screenshot``."""
    return lambda page, name: take_screenshot(page, name, tmp_path)


def take_screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Into the test's directory; also into docs/screenshots with INBOX_SCREENSHOTS=1,
    so the README's pictures are refreshed on demand, not by every run."""
    target = tmp_path / f"{name}.png"
    page.screenshot(path=str(target))
    if os.environ.get("INBOX_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, SCREENSHOTS / f"{name}.png")
    return target
