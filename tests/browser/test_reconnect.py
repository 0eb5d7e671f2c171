"""The server restarts while an agent has the console open: the console says it is
reconnecting, comes back live by itself, and what arrived meanwhile shows once."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.server import ConsoleServer


def test_a_restart_shows_reconnecting_then_live_and_messages_sent_meanwhile_appear_once(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550004001"
    console_server.send_whatsapp_text(phone, "Before the restart", name="Rhea Restart")
    page = new_page()
    signed_in(page, console_server.agent)
    connection = page.get_by_role("status", name="Connection")
    expect(connection).to_have_text("Live")
    page.get_by_role("listbox", name="Conversations").get_by_text("Rhea Restart").click()
    log = page.get_by_role("log", name="Messages")
    expect(log).to_contain_text("Before the restart")

    console_server.stop()
    expect(connection).to_have_text("Reconnecting…")
    console_server.start()
    # Sent right away: most likely before the console is back, to be caught up on resume.
    for n in (1, 2, 3):
        console_server.send_whatsapp_text(phone, f"While you were away {n}", name="Rhea Restart")

    expect(connection).to_have_text("Live", timeout=30_000)
    for n in (1, 2, 3):
        expect(log.get_by_text(f"While you were away {n}", exact=True)).to_have_count(1)
    rows = page.get_by_role("listbox", name="Conversations").get_by_role("option")
    expect(rows.filter(has_text="Rhea Restart")).to_have_count(1)
    expect(rows.filter(has_text="Rhea Restart")).to_contain_text("While you were away 3")

    # Still live afterwards: the next message comes without a reload, once.
    console_server.send_whatsapp_text(phone, "After the restart", name="Rhea Restart")
    expect(log.get_by_text("After the restart", exact=True)).to_have_count(1)
    expect(log.get_by_text("While you were away 2", exact=True)).to_have_count(1)
