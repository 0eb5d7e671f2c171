"""The manager's dashboard: six live tiles that move as messages arrive, charts of the
messages over today and the last 30 days, a report over a chosen range with a per-agent
table, and CSV downloads; all under the service's strict policy."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import problems
from tests.browser.dashboard import TILES, chart, figure, tile
from tests.browser.server import ConsoleServer
from tests.browser.test_pages_smoke import watch_hosts


def open_dashboard(page: Any, server: ConsoleServer, signed_in: Any) -> None:
    signed_in(page, server.admin)
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("status", name="Connection")).to_have_text("Live")
    expect(page.get_by_role("table", name="Agents")).to_be_visible()


def test_the_dashboard_shows_six_live_tiles_charts_and_the_agents_table(
    console_server: ConsoleServer, new_page: Any, signed_in: Any, screenshot: Any
) -> None:
    console_server.send_whatsapp_text("+15550015001", "Do you ship abroad?", name="Dana Dash")
    console_server.send_whatsapp_text("+15550015002", "Price list please", name="Eli Dash")
    page = new_page()
    outside = watch_hosts(page, console_server)
    open_dashboard(page, console_server, signed_in)
    assert page.url == console_server.url + "/dashboard"

    for name in TILES:
        expect(tile(page, name)).to_be_visible()
    expect(tile(page, "Messages today")).to_contain_text(re.compile(r"\d+ received"))
    assert int(figure(page, "New leads today")) >= 2
    expect(tile(page, "Median first response today")).to_contain_text("no first replies yet")

    agents = page.get_by_role("table", name="Agents")
    for header in ("Agent", "Online", "Assigned", "Replies sent", "Median first response"):
        expect(agents.get_by_role("columnheader", name=header)).to_be_visible()
    for name in ("Olivia Owner", "Ana Agent", "Bruno Agent"):
        expect(agents.get_by_role("rowheader", name=name)).to_be_visible()

    # Each chart is one named image drawn in SVG, with its figures in a table beside it.
    hourly = chart(page, "Messages per hour, today")
    expect(hourly.get_by_role("img")).to_have_attribute(
        "aria-label", re.compile(r"Received: \d+ in all")
    )
    assert hourly.locator("svg rect.bar").count() == 2 * 24
    expect(hourly.get_by_role("table")).to_be_attached()
    daily = chart(page, "Messages per day, last 30 days")
    expect(daily.locator("svg polyline")).to_have_count(2)
    expect(daily.get_by_role("table").get_by_role("row")).to_have_count(31)
    by_channel = chart(page, "Messages by channel")
    expect(by_channel.get_by_role("img")).to_have_attribute("aria-label", re.compile("Received"))
    expect(by_channel.get_by_role("table")).to_contain_text("WhatsApp")

    expect(page.get_by_text(re.compile(r"Days and hours in \S+"))).to_be_visible()
    screenshot(page, "dashboard")
    assert outside == []
    assert page.evaluate("window.__violations") == []
    assert problems(page).errors == []


def test_a_customers_message_moves_messages_today_over_the_socket_without_a_reload(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    page = new_page()
    open_dashboard(page, console_server, signed_in)
    before = int(figure(page, "Messages today").replace(",", ""))
    leads = int(figure(page, "New leads today"))
    page.evaluate("window.__same_page = true")
    asked_for_live: list[str] = []
    page.on("request", lambda r: "/api/analytics/live" in r.url and asked_for_live.append(r.url))

    console_server.send_whatsapp_text("+15550015101", "Still open?", name="Finn Figures")

    expect(tile(page, "Messages today").locator("p").first).to_have_text(str(before + 1))
    expect(tile(page, "New leads today").locator("p").first).to_have_text(str(leads + 1))
    # Pushed by metrics.update: nothing reloaded, nothing asked for the figures again.
    assert page.evaluate("window.__same_page") is True
    assert asked_for_live == []
    # Today's overview is read again when figures move: the new conversation is unassigned.
    expect(tile(page, "Unassigned")).to_contain_text("not closed")


def test_the_range_picker_reports_over_the_chosen_days_and_refuses_a_reversed_range(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    page = new_page()
    open_dashboard(page, console_server, signed_in)
    # Today is what the report shows first.
    expect(page.get_by_role("button", name="Today")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("heading", name="Today", level=2)).to_be_visible()

    page.get_by_role("button", name="7 days").click()
    expect(page.get_by_role("button", name="7 days")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Today")).to_have_attribute("aria-pressed", "false")
    frm = page.get_by_label("From", exact=True).input_value()
    to = page.get_by_label("To", exact=True).input_value()
    expect(page.get_by_role("heading", name=f"{frm} to {to}", level=2)).to_be_visible()
    over = chart(page, "Messages over the range")
    expect(over.get_by_role("table").get_by_role("row")).to_have_count(8)

    page.get_by_label("From", exact=True).fill(to)
    page.get_by_label("To", exact=True).fill(frm)
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("status").filter(has_text="ends before it begins")).to_be_visible()

    page.get_by_role("button", name="Today").click()
    expect(page.get_by_role("heading", name="Today", level=2)).to_be_visible()
    expect(over.get_by_role("table").get_by_role("row")).to_have_count(25)
    assert problems(page).errors == []


def test_the_csv_links_answer_csv_and_download_from_the_page(
    console_server: ConsoleServer, new_page: Any, signed_in: Any
) -> None:
    page = new_page()
    open_dashboard(page, console_server, signed_in)
    headers = {
        "Overview CSV": "metric,value",
        "Messages received CSV": "start,messages_received",
        "Messages sent CSV": "start,messages_sent",
        "Agents CSV": "user_id,name,",
    }
    with console_server.api(console_server.admin) as client:
        for name, header in headers.items():
            href = page.get_by_role("link", name=name).get_attribute("href")
            assert href is not None and "format=csv" in href
            r = client.get(href)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/csv")
            assert r.text.startswith(header), (name, r.text[:80])

    # Clicked, the page fetches it with its session and hands the browser a file.
    with page.expect_download() as download:
        page.get_by_role("link", name="Agents CSV").click()
    assert download.value.suggested_filename == "agents.csv"
    with open(download.value.path(), encoding="utf-8") as saved:
        assert saved.readline().startswith("user_id,name,")
    # Without a credential the same address refuses: a link alone gives nothing away.
    assert httpx.get(console_server.url + href).status_code == 401
