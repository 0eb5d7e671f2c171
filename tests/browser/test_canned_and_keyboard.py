"""Canned responses in the composer, and a whole reply made with the keyboard alone:
sign in, open a conversation, insert a canned response, send."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.console import conversations, eventually, message, open_conversation, sent_texts
from tests.browser.server import ConsoleServer


def tab_to(page: Any, target: Any, presses: int = 40) -> None:
    """Press Tab until ``target`` has the focus: it is reachable by keyboard."""
    for _ in range(presses):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} never got the focus by Tab")


def add_canned(server: ConsoleServer, short_code: str, content: str) -> None:
    with server.api(server.admin) as admin:
        r = admin.post("/api/canned-responses", json={"short_code": short_code, "content": content})
        assert r.status_code == 201, r.text


def test_slash_lists_the_canned_responses_and_fills_in_their_placeholders(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    add_canned(console_server, "hours", "Hi {{contact.name}}, we are open 9 to 5.")
    add_canned(console_server, "bye", "Thanks for writing, {{agent.name}} here.")
    console_server.send_whatsapp_text("+15550003001", "When are you open?", name="Carla Canned")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Carla Canned")

    box = page.get_by_role("textbox", name="Reply")
    box.press_sequentially("/ho")
    picker = page.get_by_role("listbox", name="Canned responses")
    expect(picker).to_be_visible()
    expect(picker.get_by_role("option")).to_have_count(1)
    screenshot(page, "canned-responses")
    box.press("Enter")
    expect(box).to_have_value("Hi Carla Canned, we are open 9 to 5.")
    expect(picker).to_be_hidden()

    # A response made now is offered at once: every console hears of it.
    add_canned(console_server, "holiday", "We are closed on holidays.")
    box.fill("")
    box.press_sequentially("/hol")
    expect(picker.get_by_role("option")).to_have_count(1)
    # And a list already open takes it in without a key pressed.
    add_canned(console_server, "hola", "¡Hola {{contact.name}}!")
    expect(picker.get_by_role("option")).to_have_count(2)
    box.press("Escape")
    expect(picker).to_be_hidden()


def test_an_agent_answers_with_the_keyboard_alone(
    console_server: ConsoleServer, new_page: Any
) -> None:
    add_canned(console_server, "thanks", "Thank you {{contact.name}}!")
    phone = "+15550003002"
    console_server.send_whatsapp_text(phone, "You helped a lot", name="Kim Keys")
    page = new_page()
    page.goto(console_server.url + "/")
    agent = console_server.agent

    tab_to(page, page.get_by_role("textbox", name="Email"))
    page.keyboard.type(agent.email)
    tab_to(page, page.get_by_label("Password"))
    page.keyboard.type(agent.password)
    page.keyboard.press("Enter")
    row = conversations(page).get_by_text("Kim Keys").first
    expect(row).to_be_visible()

    tab_to(page, conversations(page).get_by_role("link").or_(
        conversations(page).get_by_role("option")
    ).filter(has_text="Kim Keys").first)
    page.keyboard.press("Enter")
    reply_box = page.get_by_role("textbox", name="Reply")
    expect(page.get_by_role("heading", name="Kim Keys", level=2)).to_be_visible()

    tab_to(page, reply_box)
    page.keyboard.type("/than")
    expect(page.get_by_role("listbox", name="Canned responses")).to_be_visible()
    page.keyboard.press("Enter")
    expect(reply_box).to_have_value("Thank you Kim Keys!")
    page.keyboard.press("Enter")

    expect(message(page, "Thank you Kim Keys!")).to_have_attribute("data-status", "sent")
    eventually(lambda: sent_texts(console_server, phone) == ["Thank you Kim Keys!"], "sent once")


def test_escape_closes_the_snooze_menu_and_leaves_the_conversation_open(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    console_server.send_whatsapp_text("+15550003003", "Call me tomorrow", name="Sid Snooze")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Sid Snooze")

    page.get_by_role("button", name="Snooze").click()
    expect(page.get_by_role("button", name="1 hour")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="1 hour")).to_be_hidden()
    expect(page.get_by_role("button", name="Snooze")).to_be_focused()
    expect(page.get_by_role("log", name="Messages")).to_be_visible()

    page.keyboard.press("Enter")
    page.get_by_role("button", name="Tomorrow 9:00").click()
    expect(page.get_by_role("combobox", name="Conversation status")).to_have_value("snoozed")
    expect(page.get_by_text(re.compile(r"^until \w"))).to_be_visible()
