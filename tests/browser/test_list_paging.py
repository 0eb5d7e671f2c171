"""A long conversation list as an agent scrolls it: pages load as the end comes into
sight, only the rows in sight are drawn, and the keyboard and live updates reach rows
that are far away or not drawn at all."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.server import ConsoleServer

CUSTOMERS = 130  # more than two pages of 50


def conversations(page: Any) -> Any:
    return page.get_by_role("listbox", name="Conversations")


def row(page: Any, name: str) -> Any:
    return conversations(page).get_by_role("option").filter(has_text=name)


def customer(number: int) -> str:
    return f"Pager {number:03d}"


def scrolling_stopped(page: Any) -> None:
    """A wheel's smooth scroll runs on after the last turn: wait until it comes to rest."""
    page.wait_for_function(
        """() => {
            const top = document.querySelector('[role=listbox]').parentElement.scrollTop;
            const still = window.lastTop === top;
            window.lastTop = top;
            return still;
        }""",
        polling=150,
    )


def test_scrolling_a_long_list_pages_on_and_draws_only_the_rows_in_sight(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    # Pager 000 wrote last, Pager 129 first (ten seconds apart, whatever the time taken
    # to send them): the list shows them in that order.
    for number in range(CUSTOMERS):
        console_server.send_whatsapp_text(
            f"+1555001{number:04d}", f"Question number {number}", name=customer(number),
            later=-10 * number,
        )
    page = new_page()
    signed_in(page, console_server.agent)
    list_ = conversations(page)
    expect(row(page, customer(0))).to_be_visible()
    expect(page.get_by_text(f"{CUSTOMERS} conversations")).to_be_visible()
    drawn = list_.get_by_role("option").count()
    assert 0 < drawn < 50, f"{drawn} rows drawn for one screen"
    expect(list_.get_by_role("option").first).to_have_attribute("aria-setsize", str(CUSTOMERS))

    # Scroll on as a user would until the first customer who wrote comes into sight.
    list_.hover()
    oldest = row(page, customer(CUSTOMERS - 1))
    for _ in range(200):
        if oldest.count() and oldest.is_visible():
            break
        page.mouse.wheel(0, 1500)
        page.wait_for_timeout(30)
    scrolling_stopped(page)
    expect(oldest).to_be_visible()
    expect(oldest).to_have_attribute("aria-posinset", str(CUSTOMERS))
    assert list_.get_by_role("option").count() < 50
    expect(row(page, customer(0))).to_have_count(0)  # far above: not drawn

    # The keyboard reaches a row that is not drawn, and brings it into sight.
    oldest.focus()
    page.keyboard.press("Home")
    expect(row(page, customer(0))).to_be_focused()
    page.keyboard.press("End")
    expect(oldest).to_be_focused()
    page.keyboard.press("k")
    expect(row(page, customer(CUSTOMERS - 2))).to_be_focused()

    # A customer far down the list writes again: the row comes to the top, drawn.
    page.keyboard.press("Home")
    console_server.send_whatsapp_text(
        f"+1555001{CUSTOMERS - 1:04d}", "Anyone there?", name=customer(CUSTOMERS - 1), later=5
    )
    expect(list_.get_by_role("option").first).to_contain_text(customer(CUSTOMERS - 1))
    expect(list_.get_by_role("option").first).to_contain_text("Anyone there?")
    expect(row(page, customer(CUSTOMERS - 1))).to_have_count(1)
    assert problems(page).errors == []


def test_a_narrow_dark_window_shows_the_list_or_the_conversation_and_goes_back(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    console_server.send_whatsapp_text("+15550019999", "Do you ship to Porto?", name="Nia Narrow")
    page = new_page(color_scheme="dark", viewport={"width": 420, "height": 820})
    signed_in(page, console_server.agent)
    expect(row(page, "Nia Narrow")).to_be_visible()
    assert page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches")
    screenshot(page, "console-narrow-dark-list")

    row(page, "Nia Narrow").click()
    expect(page.get_by_role("heading", name="Nia Narrow", level=2)).to_be_visible()
    expect(conversations(page)).to_be_hidden()  # one thing at a time in a narrow window
    expect(page.get_by_role("log", name="Messages")).to_contain_text("Do you ship to Porto?")
    screenshot(page, "console-narrow-dark-conversation")

    page.get_by_role("button", name="All conversations").click()
    expect(row(page, "Nia Narrow")).to_be_visible()
    assert problems(page).errors == []
