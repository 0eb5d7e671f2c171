"""What an agent does in the console, in the words of the page (roles and names)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.browser.server import ConsoleServer


def conversations(page: Any) -> Any:
    return page.get_by_role("list", name="Conversations").or_(
        page.get_by_role("listbox", name="Conversations")
    )


def open_conversation(page: Any, contact_name: str) -> None:
    """Click the contact's row in the list, then wait for its messages."""
    conversations(page).get_by_text(contact_name, exact=False).first.click()
    page.get_by_role("heading", name=contact_name, level=2).wait_for()
    messages(page).wait_for()


def messages(page: Any) -> Any:
    return page.get_by_role("log", name="Messages")


def message(page: Any, text: str) -> Any:
    """The log's entry holding ``text``."""
    return messages(page).locator("li.msg", has_text=text)


def reply(page: Any, text: str) -> None:
    box = page.get_by_role("textbox", name="Reply")
    box.fill(text)
    box.press("Enter")


def sends_to(server: ConsoleServer, phone: str) -> list[dict[str, Any]]:
    """The bodies of the platform's message sends to ``phone``."""
    to = phone.lstrip("+")
    return [r.json() for r in server.sends() if r.json().get("to") == to]


def sent_texts(server: ConsoleServer, phone: str) -> list[str]:
    return [b.get("text", {}).get("body", "") for b in sends_to(server, phone)]


def wamid_of(server: ConsoleServer, text: str) -> str:
    """The platform id the fake gave the send of ``text``."""
    for r in server.sends():
        if r.json().get("text", {}).get("body") == text:
            return str(r.reply_json()["messages"][0]["id"])
    raise AssertionError(f"the platform received no {text!r}")


def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


def named(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)
