"""An agent answers a customer: the reply reaches the platform once and its status
follows live; a refused reply says why and can be sent again; a note stays inside."""

from __future__ import annotations

import json
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.console import (
    eventually,
    message,
    messages,
    open_conversation,
    reply,
    sent_texts,
    wamid_of,
)
from tests.browser.server import ConsoleServer
from tests.connectors.fake_platform import graph_error
from tests.inbox.platforms import whatsapp_text


def test_a_reply_sent_with_enter_reaches_the_platform_once_and_follows_its_statuses(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    phone = "+15550001001"
    console_server.send_whatsapp_text(phone, "Hello, has my order shipped?", name="Rita Reply")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Rita Reply")
    expect(message(page, "Hello, has my order shipped?")).to_be_visible()

    reply(page, "It ships today")
    sent = message(page, "It ships today")
    expect(sent).to_have_count(1)
    expect(sent).to_have_attribute("data-status", "sent")
    assert sent_texts(console_server, phone) == ["It ships today"]
    expect(page.get_by_role("textbox", name="Reply")).to_have_value("")

    wamid = wamid_of(console_server, "It ships today")
    console_server.send_whatsapp_status(wamid, "delivered", recipient=phone)
    expect(sent).to_have_attribute("data-status", "delivered")
    console_server.send_whatsapp_status(wamid, "read", recipient=phone)
    expect(sent).to_have_attribute("data-status", "read")
    screenshot(page, "conversation")
    assert problems(page).errors == []


def test_a_refused_reply_shows_the_platforms_reason_and_retry_sends_it(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550001002"
    console_server.send_whatsapp_text(phone, "Are you there?", name="Fiona Failed")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Fiona Failed")

    console_server.fake_platform.enqueue(
        graph_error(131026, "Message undeliverable", details="Receiver is incapable")
    )
    reply(page, "Yes, here to help")
    sent = message(page, "Yes, here to help")
    expect(sent).to_have_attribute("data-status", "failed")
    expect(sent).to_contain_text("undeliverable")

    sent.get_by_role("button", name="Retry").click()
    expect(sent).to_have_attribute("data-status", "sent")
    expect(sent).to_have_count(1)
    assert sent_texts(console_server, phone) == ["Yes, here to help", "Yes, here to help"]


def test_a_double_click_on_send_sends_once(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550001003"
    console_server.send_whatsapp_text(phone, "Quick question", name="Dora Double")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Dora Double")

    page.get_by_role("textbox", name="Reply").fill("Sure, ask away")
    page.get_by_role("button", name="Send").dblclick()
    expect(message(page, "Sure, ask away")).to_have_attribute("data-status", "sent")
    # A later reply reaching the platform means the first had every chance to go twice.
    reply(page, "Anything else?")
    eventually(lambda: "Anything else?" in sent_texts(console_server, phone), "second reply sent")
    assert sent_texts(console_server, phone) == ["Sure, ask away", "Anything else?"]
    expect(message(page, "Sure, ask away")).to_have_count(1)


def test_a_private_note_reaches_the_other_agent_live_and_never_the_platform(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550001004"
    console_server.send_whatsapp_text(phone, "I need a refund", name="Nora Note")
    ana, bruno = new_page(), new_page()
    signed_in(ana, console_server.agent)
    signed_in(bruno, console_server.agent2)
    open_conversation(ana, "Nora Note")
    open_conversation(bruno, "Nora Note")

    ana.get_by_role("checkbox", name="Private note").check()
    reply(ana, "Check the order before refunding")
    note = message(bruno, "Check the order before refunding")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Private note")

    ana.get_by_role("checkbox", name="Private note").uncheck()
    reply(ana, "We are looking into it")
    eventually(
        lambda: "We are looking into it" in sent_texts(console_server, phone), "reply sent"
    )
    assert sent_texts(console_server, phone) == ["We are looking into it"]


def test_a_long_conversation_opens_at_its_latest_message_and_scrolling_up_loads_older_ones(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    console_server.send_whatsapp_text("+15550001005", "Note 0 from the customer", name="Lou Long")
    with console_server.api(console_server.admin) as admin:
        found = admin.get("/api/conversations", params={"q": "Lou Long", "view": "all"})
        conversation_id = found.json()["data"][0]["id"]
        for n in range(1, 120):
            r = admin.post(
                f"/api/conversations/{conversation_id}/messages",
                json={"content": f"Note {n} of the history", "private": True},
            )
            assert r.status_code == 201, r.text
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Lou Long")

    latest = message(page, "Note 119 of the history")
    expect(latest).to_be_in_viewport()
    expect(message(page, "Note 0 from the customer")).to_have_count(0)

    # Scrolled to the top, the older page comes in above the message being read, which
    # stays where it was; three times, and the whole history is there in order.
    log = page.get_by_role("log", name="Messages")
    for reading, older in (
        ("Note 70 of the history", "Note 69 of the history"),
        ("Note 20 of the history", "Note 19 of the history"),
        ("Note 1 of the history", "Note 0 from the customer"),
    ):
        log.locator("li.msg").first.scroll_into_view_if_needed()
        expect(message(page, older)).to_have_count(1)
        expect(message(page, reading)).to_be_in_viewport()
        expect(latest).not_to_be_in_viewport()
    texts = log.locator("li.msg p.text").all_text_contents()
    history = [f"Note {n} of the history" for n in range(1, 120)]
    assert texts == ["Note 0 from the customer", *history]


def customer_event(
    server: ConsoleServer, phone: str, name: str, kind: str, **fields: Any
) -> None:
    """A signed WhatsApp webhook carrying one message of ``kind`` (reaction, revoke...)."""
    wamid = f"wamid.event{time.time_ns()}"
    wa_id = phone.lstrip("+")
    body = json.loads(whatsapp_text(server.whatsapp, wamid, "-", wa_id=wa_id, name=name))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    # A second on: the platform's times are whole seconds, and this comes after the rest.
    message.update({"type": kind, "timestamp": str(int(time.time()) + 1), kind: fields})
    server._post_whatsapp(json.dumps(body).encode())


def test_reactions_and_deleted_messages_are_shown_as_such(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550001006"
    first = console_server.send_whatsapp_text(phone, "Wrong chat, sorry", name="Remy React")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Remy React")
    reply(page, "No problem at all")
    expect(message(page, "No problem at all")).to_have_attribute("data-status", "sent")

    customer_event(
        console_server, phone, "Remy React", "reaction",
        message_id=wamid_of(console_server, "No problem at all"), emoji="👍",
    )
    expect(messages(page)).to_contain_text("Remy React reacted 👍 to “No problem at all”")
    customer_event(console_server, phone, "Remy React", "revoke", original_message_id=first)
    expect(message(page, "This message was deleted")).to_have_count(1)
    expect(message(page, "Wrong chat, sorry")).to_have_count(0)


def test_a_reply_cut_off_by_the_network_is_retried_with_its_key_and_sent_once(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    phone = "+15550001007"
    console_server.send_whatsapp_text(phone, "Is it in stock?", name="Nell Network")
    page = new_page()
    signed_in(page, console_server.agent)
    open_conversation(page, "Nell Network")

    keys: list[str] = []
    network = {"down": True, "answers_lost": False}

    def messages_post(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.headers.get("idempotency-key", ""))
        if network["down"]:
            route.abort("internetdisconnected")
        elif network["answers_lost"]:
            route.fetch()  # the server takes it and sends it; its answer never arrives
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/conversations/*/messages", messages_post)
    reply(page, "Yes, three left")
    sent = message(page, "Yes, three left")
    expect(sent).to_contain_text("cannot be reached")
    network["down"] = False
    sent.get_by_role("button", name="Retry").click()
    expect(sent).to_have_attribute("data-status", "sent")
    expect(sent).to_have_count(1)
    assert len(keys) == 2 and keys[0] == keys[1] != ""
    assert sent_texts(console_server, phone) == ["Yes, three left"]

    # Taken and sent, but the answer lost: the live event tells the console, once.
    network["answers_lost"] = True
    reply(page, "Shall I hold one?")
    expect(message(page, "Shall I hold one?")).to_have_attribute("data-status", "sent")
    expect(message(page, "Shall I hold one?").get_by_role("button", name="Retry")).to_have_count(0)
    assert sent_texts(console_server, phone) == ["Yes, three left", "Shall I hold one?"]
