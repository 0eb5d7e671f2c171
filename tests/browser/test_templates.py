"""WhatsApp templates in the console: a conversation started from the contact panel with
a template, and a conversation whose reply window has closed answered through the
template picker; the platform receives each in the Graph API's template form."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import update
from sqlmodel import col

from inbox.db import Database
from inbox.models import Conversation, utcnow
from inbox.settings import async_database_url
from tests.browser.conftest import problems
from tests.browser.console import eventually, message, open_conversation, sends_to
from tests.browser.server import ConsoleServer
from tests.inbox.templates_support import HELLO, ORDER_UPDATE, WELCOME

ACCOUNT = "102000000000001"


@pytest.fixture(scope="module", autouse=True)
def synced_templates(console_server: ConsoleServer) -> None:
    """The channel names its Business Account, whose templates are read by the CLI."""
    console_server.fake_platform.templates(ACCOUNT, [ORDER_UPDATE, HELLO, WELCOME])
    with console_server.api(console_server.admin) as admin:
        r = admin.patch(
            f"/api/channels/{console_server.whatsapp.id}",
            json={"settings": {"business_account_id": ACCOUNT}},
        )
        assert r.status_code == 200, r.text
    console_server.cli("channels", "sync-templates")


def conversation_of(server: ConsoleServer, phone: str) -> dict[str, Any]:
    with server.api(server.agent) as api:
        found = api.get("/api/conversations", params={"q": phone, "view": "all"}).json()["data"]
    assert found, f"no conversation with {phone}"
    return dict(found[0])


def change(server: ConsoleServer, conversation_id: int, **values: Any) -> None:
    """Straight in the database: what only time (or an agent elsewhere) would do."""

    async def write() -> None:
        db = Database(async_database_url(server.env["INBOX_DATABASE_URL"]))
        try:
            async with db.session(write=True) as session:
                await session.exec(
                    update(Conversation)
                    .where(col(Conversation.id) == conversation_id)
                    .values(**values)
                )
                await session.commit()
        finally:
            await db.dispose()

    # Playwright's sync API keeps an event loop running on this thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result()


def fill_order_update(scope: Any, number: str) -> None:
    scope.get_by_label("Header {{1}}").fill(f"#{number}")
    scope.get_by_label("Body {{2}}").fill(f"#{number}")
    scope.get_by_label("Button 1 (url)").fill(number)


def test_a_conversation_is_started_from_the_contact_panel_with_a_template(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    phone = "+15550009001"
    console_server.send_whatsapp_text(phone, "I may order later", name="Nora Newton")
    old = conversation_of(console_server, phone)
    # Closed a while ago: writing to her opens a new conversation.
    change(console_server, old["id"], status="closed")
    page = new_page()
    signed_in(page, console_server.agent)
    page.evaluate(f"location.hash = '#/conversations/{old['id']}'")
    page.get_by_role("heading", name="Nora Newton", level=2).wait_for()

    page.get_by_role("button", name="New conversation").click()
    form = page.get_by_role("form", name="New conversation")
    expect(form.get_by_label("Channel")).to_have_value(str(console_server.whatsapp.id))
    form.get_by_label("Send").select_option("template")
    form.get_by_label("Template").select_option(label="order_update (en_US)")
    # The greeting is the contact's first name, as canned responses fill it in.
    expect(form.get_by_label("Body {{1}}")).to_have_value("Nora")
    fill_order_update(form, "5001")
    expect(form.get_by_text("Hi Nora, your order #5001 has shipped.")).to_be_visible()
    screenshot(page, "new-conversation-template")
    form.get_by_role("button", name="Start conversation").click()

    expect(message(page, "your order #5001 has shipped")).to_be_visible()
    assert page.evaluate("location.hash") != f"#/conversations/{old['id']}"
    eventually(lambda: bool(sends_to(console_server, phone)), "the template reaches the platform")
    [sent] = sends_to(console_server, phone)
    assert sent["type"] == "template"
    assert sent["template"]["name"] == "order_update"
    assert sent["template"]["components"][1]["parameters"] == [
        {"type": "text", "text": "Nora"},
        {"type": "text", "text": "#5001"},
    ]
    assert problems(page).errors == []


def test_a_closed_window_turns_the_composer_into_a_template_picker(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    phone = "+15550009002"
    console_server.send_whatsapp_text(phone, "Where is my parcel?", name="Wally Window")
    conversation = conversation_of(console_server, phone)
    change(console_server, conversation["id"], last_inbound_at=utcnow() - timedelta(hours=25))
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Wally Window")

    expect(page.get_by_text("Reply window closed")).to_be_visible()
    expect(page.get_by_role("textbox", name="Reply")).to_be_hidden()
    composer = page.locator("form.composer")
    composer.get_by_label("Template").select_option(label="order_update (en_US)")
    expect(composer.get_by_label("Body {{1}}")).to_have_value("Wally")
    fill_order_update(composer, "7007")
    screenshot(page, "template-picker")
    composer.get_by_role("button", name="Send").click()

    expect(message(page, "your order #7007 has shipped")).to_be_visible()
    eventually(lambda: bool(sends_to(console_server, phone)), "the template reaches the platform")
    [sent] = sends_to(console_server, phone)
    assert (sent["type"], sent["template"]["language"]) == ("template", {"code": "en_US"})
    # A note still goes as text: the box comes back for it.
    composer.get_by_label("Private note").check()
    expect(page.get_by_role("textbox", name="Reply")).to_be_visible()
    assert problems(page).errors == []
