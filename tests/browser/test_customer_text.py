"""Whatever a customer writes, or calls themselves, is shown as text in the conversation
and runs nothing; the session stays out of reach of scripts."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.console import message, open_conversation
from tests.browser.server import ConsoleServer

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert('script')</script>",
    '"><svg onload=alert(2)>',
    "javascript:alert(3)",
]


def test_markup_in_messages_and_names_is_shown_as_text_in_the_conversation(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    name = "<b onmouseover=alert(4)>Mallory</b>"
    for text in PAYLOADS:
        console_server.send_whatsapp_text("+15550004001", text, name=name)
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, name)
    for text in PAYLOADS:
        expect(message(page, text)).to_have_count(1)
    assert page.locator(".log img, .log svg, .log script, .pane b").count() == 0
    page.get_by_role("heading", name=name, level=2).hover()

    # The session lives in an HttpOnly cookie: nothing a script could read or leak.
    stored = page.evaluate("() => JSON.stringify({...localStorage, ...sessionStorage})")
    assert "token" not in stored.lower() and "session" not in stored.lower()
    assert page.evaluate("() => document.cookie") == ""
    assert problems(page).dialogs == []
    assert problems(page).errors == []
