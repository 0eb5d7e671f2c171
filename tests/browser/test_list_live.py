"""The conversation list as agents watch it: customers' messages arrive and move rows
up without a reload, reads and assignments change it live, filters and search narrow
it, and whatever a customer writes is shown as text."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.server import ConsoleServer


def conversations(page: Any) -> Any:
    return page.get_by_role("listbox", name="Conversations")


def row(page: Any, name: str) -> Any:
    return conversations(page).get_by_role("option").filter(has_text=name)


def first_row(page: Any) -> Any:
    return conversations(page).get_by_role("option").first


def conversation_of(client: httpx.Client, name: str) -> dict[str, Any]:
    r = client.get("/api/conversations", params={"view": "all", "q": name})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"][0])


def test_a_customers_message_appears_without_reload_and_moves_its_row_to_the_top(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    page = new_page()
    signed_in(page, console_server.agent)

    console_server.send_whatsapp_text("+15550003001", "Is the shop open today?", name="Lena Live")
    expect(row(page, "Lena Live")).to_contain_text("Is the shop open today?")
    expect(row(page, "Lena Live")).to_contain_text("1 unread")
    console_server.send_whatsapp_text("+15550003002", "Hello there", name="Marco Moves", later=1)
    expect(first_row(page)).to_contain_text("Marco Moves")

    # Platform times are whole seconds: this one is the newest whatever the clock says.
    console_server.send_whatsapp_text("+15550003001", "And tomorrow?", name="Lena Live", later=2)
    expect(first_row(page)).to_contain_text("Lena Live")
    expect(first_row(page)).to_contain_text("And tomorrow?")
    expect(first_row(page)).to_contain_text("2 unread")
    expect(row(page, "Lena Live")).to_have_count(1)
    expect(page).to_have_title(re.compile(r"^\(\d+\) Inbox$"))
    screenshot(page, "console-list")
    assert problems(page).dialogs == []


def test_the_unread_badge_clears_when_another_agent_opens_the_conversation(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    console_server.send_whatsapp_text("+15550003101", "Anyone there?", name="Rosa Read")
    ana, bruno = new_page(), new_page()
    signed_in(ana, console_server.agent)
    signed_in(bruno, console_server.agent2)
    expect(row(ana, "Rosa Read")).to_contain_text("1 unread")

    row(bruno, "Rosa Read").click()
    expect(bruno.get_by_role("heading", name="Rosa Read", level=2)).to_be_visible()

    expect(row(ana, "Rosa Read")).not_to_contain_text("unread")
    expect(row(ana, "Rosa Read")).to_have_count(1)


def test_views_status_channel_label_and_search_narrow_the_list_and_rows_leave_live(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    console_server.send_whatsapp_text("+15550003201", "Refund please", name="Fern Filter")
    console_server.send_whatsapp_text("+15550003202", "Where is my parcel?", name="Gus Filter")
    page = new_page()
    signed_in(page, console_server.agent)
    expect(row(page, "Gus Filter")).to_be_visible()

    # Search: the contact's name, or what the customer wrote.
    page.get_by_role("searchbox", name="Search").fill("parcel")
    expect(row(page, "Gus Filter")).to_be_visible()
    expect(row(page, "Fern Filter")).to_have_count(0)
    page.get_by_role("searchbox", name="Search").fill("Fern")
    expect(row(page, "Fern Filter")).to_be_visible()
    expect(row(page, "Gus Filter")).to_have_count(0)
    page.get_by_role("searchbox", name="Search").fill("")
    expect(row(page, "Gus Filter")).to_be_visible()

    # Unassigned: a row leaves as soon as someone takes the conversation.
    page.get_by_role("button", name="Unassigned", exact=True).click()
    expect(row(page, "Fern Filter")).to_be_visible()
    with console_server.api(console_server.agent) as ana:
        fern = conversation_of(ana, "Fern Filter")
        r = ana.patch(
            f"/api/conversations/{fern['id']}", json={"assignee_id": console_server.agent.id}
        )
        assert r.status_code == 200, r.text
        expect(row(page, "Fern Filter")).to_have_count(0)
        page.get_by_role("button", name="Mine", exact=True).click()
        expect(row(page, "Fern Filter")).to_be_visible()
        expect(row(page, "Fern Filter")).to_contain_text("Ana Agent")
        expect(row(page, "Gus Filter")).to_have_count(0)

        # A label added elsewhere brings the row into the label's filter.
        page.get_by_role("button", name="All", exact=True).click()
        page.get_by_role("textbox", name="Label", exact=True).fill("refund")
        page.get_by_role("textbox", name="Label", exact=True).press("Enter")
        expect(row(page, "Fern Filter")).to_have_count(0)
        r = ana.post(f"/api/conversations/{fern['id']}/labels", json={"add": ["refund"]})
        assert r.status_code == 200, r.text
        expect(row(page, "Fern Filter")).to_be_visible()
        expect(row(page, "Gus Filter")).to_have_count(0)
        page.get_by_role("textbox", name="Label", exact=True).fill("")
        page.get_by_role("textbox", name="Label", exact=True).press("Enter")

        # Status: closing moves it from Open to Closed.
        r = ana.patch(f"/api/conversations/{fern['id']}", json={"status": "closed"})
        assert r.status_code == 200, r.text
        expect(row(page, "Fern Filter")).to_have_count(0)
        page.get_by_role("combobox", name="Status", exact=True).select_option("closed")
        expect(row(page, "Fern Filter")).to_be_visible()
        expect(row(page, "Gus Filter")).to_have_count(0)

    # Channel: the organization's one WhatsApp channel holds them all.
    page.get_by_role("combobox", name="Status", exact=True).select_option("open")
    channel = page.get_by_role("combobox", name="Channel", exact=True)
    channel.select_option(str(console_server.whatsapp.id))
    expect(row(page, "Gus Filter")).to_be_visible()


def test_markup_from_a_customer_is_shown_as_text_and_runs_nothing(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    page = new_page()
    signed_in(page, console_server.agent)
    name = "<img src=x onerror=alert(1)>"
    text = "<script>alert(2)</script><b onmouseover=alert(3)>bold</b>"
    console_server.send_whatsapp_text("+15550003301", text, name=name)

    hostile = row(page, name)
    expect(hostile).to_contain_text(name)
    expect(hostile).to_contain_text(text)
    expect(conversations(page).locator("img, script, b")).to_have_count(0)
    hostile.hover()
    hostile.click()
    expect(page.get_by_role("log", name="Messages")).to_contain_text(text)
    expect(page.locator("main img, main script, main b")).to_have_count(0)
    assert problems(page).dialogs == []
