"""Signing in and out of the console: a session the page's scripts never see, kept
across a reload, ended on the server by signing out."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.server import ConsoleServer


def conversations(page: Any) -> Any:
    return page.get_by_role("listbox", name="Conversations")


def fill_sign_in(page: Any, email: str, password: str) -> None:
    page.get_by_role("textbox", name="Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_console(
    console_server: ConsoleServer, new_page: Any, screenshot: Any
) -> None:
    page = new_page()
    page.goto(console_server.url + "/")
    agent = console_server.agent

    fill_sign_in(page, agent.email, "not the password")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password")
    expect(conversations(page)).to_have_count(0)
    screenshot(page, "sign-in-error")

    fill_sign_in(page, agent.email, agent.password)
    expect(conversations(page)).to_be_visible()
    expect(page.get_by_role("heading", name="Acme Support")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("status", name="Connection")).to_have_text("Live")
    assert problems(page).dialogs == []


def test_a_reload_keeps_the_agent_signed_in_and_no_credential_is_in_web_storage(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    page = new_page()
    signed_in(page, console_server.agent)

    page.reload()
    expect(conversations(page)).to_be_visible()
    expect(page.get_by_role("textbox", name="Email")).to_have_count(0)

    storage = page.evaluate(
        """() => ({
            local: Object.entries(localStorage),
            session: Object.entries(sessionStorage),
            cookie: document.cookie,
        })"""
    )
    # At most UI preferences, never anything session-like.
    assert storage["session"] == []
    assert {key for key, _ in storage["local"]} <= {"inbox.notifications"}
    assert "inbox_session" not in storage["cookie"]
    cookie = next(c for c in page.context.cookies() if c["name"] == "inbox_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"


def test_signing_out_returns_to_the_form_and_the_old_cookie_no_longer_works(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    page = new_page()
    signed_in(page, console_server.agent2)
    cookie = next(c for c in page.context.cookies() if c["name"] == "inbox_session")
    as_console = {"X-Inbox-Client": "console", "Cookie": f"inbox_session={cookie['value']}"}
    assert httpx.get(console_server.url + "/api/auth/me", headers=as_console).status_code == 200

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("textbox", name="Email")).to_be_visible()
    expect(conversations(page)).to_have_count(0)

    assert httpx.get(console_server.url + "/api/auth/me", headers=as_console).status_code == 401
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
