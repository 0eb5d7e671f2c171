"""What a manager or a wall screen sees on the dashboard, in the words of the page."""

from __future__ import annotations

from typing import Any

from tests.browser.server import PASSWORD, ConsoleServer, User

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
    page.get_by_role("button", name="Sign in", exact=True).click()


def viewer_user(server: ConsoleServer, admin: User, email: str) -> User:
    """A user with the viewer role, as an admin makes one for a wall screen."""
    with server.api(admin) as client:
        r = client.post("/api/users", json={
            "email": email, "name": "Wall Screen", "password": PASSWORD, "role": "viewer"})
        assert r.status_code == 201, r.text
        return User(int(r.json()["id"]), email, "Wall Screen", "viewer")


def sign_in_kiosk(page: Any, server: ConsoleServer, user: User) -> None:
    page.goto(server.url + "/dashboard?kiosk=1")
    page.get_by_role("button", name="Sign in with a viewer account instead").click()
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in", exact=True).click()
