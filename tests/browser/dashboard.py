"""What a manager or a wall screen sees on the dashboard, in the words of the page."""

from __future__ import annotations

from typing import Any

from tests.browser.server import ConsoleServer, User

TILES = (
    "Open conversations",
    "Unassigned",
    "Messages today",
    "Median first response today",
    "Agents online",
    "New leads today",
)


def tile(page: Any, name: str) -> Any:
    return page.get_by_role("group", name=name, exact=True)


def figure(page: Any, name: str) -> str:
    """The tile's figure: its first line of text after the name."""
    return str(tile(page, name).locator("p").first.inner_text())


def chart(page: Any, title: str) -> Any:
    return page.get_by_role("figure", name=title)


def viewer_key(server: ConsoleServer, admin: User, role: str = "viewer") -> str:
    with server.api(admin) as client:
        r = client.post("/api/api-keys", json={"name": f"Wall screen ({role})", "role": role})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])


def open_kiosk(page: Any, server: ConsoleServer, key: str) -> None:
    page.goto(server.url + "/dashboard?kiosk=1")
    page.get_by_label("Viewer API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
