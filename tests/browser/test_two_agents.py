"""Two agents on one conversation, each in a browser of their own: what one does, the
other sees without reloading."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.console import conversations, message, open_conversation
from tests.browser.server import ConsoleServer


def test_assignment_status_labels_reads_and_typing_reach_the_other_agent_live(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550002001"
    console_server.send_whatsapp_text(phone, "Hi, two questions", name="Tara Together")
    ana, bruno = new_page(), new_page()
    signed_in(ana, console_server.agent)
    signed_in(bruno, console_server.agent2)

    # Ana's list shows the unread message until Bruno's opening reads it for everyone.
    row = conversations(ana).locator("li").filter(has_text="Tara Together")
    expect(row).to_contain_text("unread")
    open_conversation(bruno, "Tara Together")
    expect(row).not_to_contain_text("unread")
    open_conversation(ana, "Tara Together")
    expect(ana.get_by_text("Bruno Agent is also viewing")).to_be_visible()
    expect(bruno.get_by_text("Ana Agent is also viewing")).to_be_visible()

    ana.get_by_role("button", name="Assign to me").click()
    expect(bruno.get_by_role("combobox", name="Assignee")).to_have_value(
        str(console_server.agent.id)
    )

    bruno.get_by_role("combobox", name="Conversation status").select_option("pending")
    expect(ana.get_by_role("combobox", name="Conversation status")).to_have_value("pending")

    ana.get_by_role("textbox", name="Add label").fill("billing")
    ana.get_by_role("textbox", name="Add label").press("Enter")
    labels = bruno.get_by_role("group", name="Labels")
    expect(labels).to_contain_text("billing")
    bruno.get_by_role("button", name="Remove label billing").click()
    expect(ana.get_by_role("group", name="Labels")).not_to_contain_text("billing")

    ana.get_by_role("textbox", name="Reply").press_sequentially("Let me check", delay=20)
    expect(bruno.get_by_text("Ana Agent is typing")).to_be_visible()


def test_a_message_arriving_in_an_open_conversation_is_read_for_everyone(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550002002"
    console_server.send_whatsapp_text(phone, "First question", name="Owen Open")
    ana, bruno = new_page(), new_page()
    signed_in(ana, console_server.agent)
    signed_in(bruno, console_server.agent2)
    open_conversation(ana, "Owen Open")
    row = conversations(bruno).locator("li").filter(has_text="Owen Open")
    expect(row).not_to_contain_text("unread")

    console_server.send_whatsapp_text(phone, "And a second one", name="Owen Open")
    expect(message(ana, "And a second one")).to_be_visible()
    expect(row).to_contain_text("And a second one")
    expect(row).not_to_contain_text("unread")


def test_the_contact_panel_edits_the_lead_and_notes_and_the_other_agent_sees_the_lead_live(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    console_server.send_whatsapp_text("+15550002003", "Price for 10 units?", name="Lea Lead")
    ana, bruno = new_page(), new_page()
    signed_in(ana, console_server.agent)
    signed_in(bruno, console_server.agent2)
    open_conversation(ana, "Lea Lead")
    open_conversation(bruno, "Lea Lead")
    panel = ana.get_by_role("complementary", name="Contact")
    expect(panel).to_contain_text("+15550002003")

    theirs = bruno.get_by_role("complementary", name="Contact")
    draft = theirs.get_by_role("textbox", name="Contact notes")
    draft.fill("Half a thought")

    panel.get_by_role("combobox", name="Lead status").select_option("qualified")
    panel.get_by_role("spinbutton", name="Lead value").fill("250")
    panel.get_by_role("spinbutton", name="Lead value").press("Tab")
    expect(theirs.get_by_role("combobox", name="Lead status")).to_have_value("qualified")
    expect(theirs.get_by_role("spinbutton", name="Lead value")).to_have_value("250")
    # Bruno's note in the making is left as it was, focus and all.
    expect(draft).to_have_value("Half a thought")
    expect(draft).to_be_focused()

    panel.get_by_role("textbox", name="Contact notes").fill("Wholesale buyer")
    panel.get_by_role("button", name="Save notes").click()
    expect(panel.get_by_role("status")).to_have_text("Saved")
    with console_server.api(console_server.agent) as api:
        found = api.get("/api/conversations", params={"q": "Lea Lead", "view": "all"})
        contact_id = found.json()["data"][0]["contact_id"]
        assert api.get(f"/api/contacts/{contact_id}").json()["notes"] == "Wholesale buyer"
