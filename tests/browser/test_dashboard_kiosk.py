"""The wall screen: /dashboard?kiosk=1 asks once for a viewer API key, shows the figures
in large type with no controls, keeps the key out of storage, and comes back by itself
after the server restarts, its tiles still moving."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.dashboard import (
    TILES,
    chart,
    figure,
    open_kiosk,
    sign_in_kiosk,
    tile,
    viewer_key,
    viewer_user,
)
from tests.browser.server import ConsoleServer


def test_a_key_that_can_write_is_refused_for_a_wall_screen(
    console_server: ConsoleServer, new_page: Any
) -> None:
    page = new_page()
    open_kiosk(page, console_server, viewer_key(console_server, console_server.admin, "agent"))
    expect(page.get_by_role("alert")).to_contain_text("it takes a viewer only")
    expect(page.get_by_role("alert")).to_contain_text("role “agent”")
    open_kiosk(page, console_server, "not-a-key")
    expect(page.get_by_role("alert")).to_contain_text("not valid")


def test_the_wall_screen_shows_no_controls_and_survives_a_server_restart(
    console_server: ConsoleServer, new_page: Any, screenshot: Any
) -> None:
    key = viewer_key(console_server, console_server.admin)
    console_server.send_whatsapp_text("+15550016001", "Hello wall", name="Wanda Wall")
    page = new_page(viewport={"width": 1600, "height": 1000})
    open_kiosk(page, console_server, key)
    connection = page.get_by_role("status", name="Connection")
    expect(connection).to_have_text("Live")
    for name in TILES:
        expect(tile(page, name)).to_be_visible()
    expect(page.get_by_role("table", name="Agents")).to_be_visible()
    expect(chart(page, "Messages per hour, today").locator("svg rect.bar").first).to_be_attached()

    # Nothing to press, type or follow on a screen on the wall.
    for role in ("button", "link", "textbox"):
        expect(page.get_by_role(role)).to_have_count(0)
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert key not in page.content()
    screenshot(page, "dashboard-kiosk")

    console_server.stop()
    expect(connection).to_have_text("Reconnecting…")
    console_server.start()
    expect(connection).to_have_text("Live", timeout=30_000)

    before = int(figure(page, "Messages today").replace(",", ""))
    console_server.send_whatsapp_text("+15550016002", "After the restart", name="Walt Wall")
    expect(tile(page, "Messages today").locator("p").first).to_have_text(str(before + 1))
    expect(page.get_by_role("button")).to_have_count(0)
    assert problems(page).errors == []


def test_a_viewer_account_keeps_the_wall_screen_signed_in_across_a_reload(
    console_server: ConsoleServer, new_page: Any
) -> None:
    viewer = viewer_user(console_server, console_server.admin, "wall@acme.example")
    page = new_page()
    sign_in_kiosk(page, console_server, viewer)
    expect(page.get_by_role("status", name="Connection")).to_have_text("Live")

    page.reload()
    expect(page.get_by_role("status", name="Connection")).to_have_text("Live")
    expect(tile(page, "Messages today")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    # The session is the HttpOnly cookie: nothing the page's scripts can read or store.
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    before = int(figure(page, "Messages today").replace(",", ""))
    console_server.send_whatsapp_text("+15550016003", "After the reload", name="Rita Reload")
    expect(tile(page, "Messages today").locator("p").first).to_have_text(str(before + 1))
    assert problems(page).errors == []


def test_an_account_that_can_write_is_refused_and_not_left_signed_in(
    console_server: ConsoleServer, new_page: Any, screenshot: Any
) -> None:
    page = new_page()
    sign_in_kiosk(page, console_server, console_server.agent)
    expect(page.get_by_role("alert")).to_contain_text("role “agent”")
    screenshot(page, "dashboard-kiosk-signin")

    page.reload()
    expect(page.get_by_label("Viewer API key")).to_be_visible()
    expect(page.get_by_role("group", name="Messages today")).to_have_count(0)
