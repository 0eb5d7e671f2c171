"""`inbox demo`: an organization a newcomer can click through at once, and with `--live`
customers who keep writing in through the service's real webhook routes. Real processes:
`inbox serve` and `inbox demo`, as a newcomer runs them."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import create_database, drop_database, free_port

from inbox.demo.script import NEWCOMERS
from tests.inbox.test_cli import Cli, Served, clean_env, inbox_executable


@pytest.fixture(params=["sqlite", "postgres"])
def demo_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'inbox.db'}", None
    else:
        server_url = request.getfixturevalue("postgres_server_url")
        url, name = create_database(server_url)
        drop = (server_url, name)
    cli = Cli(tmp_path, clean_env(url))
    try:
        assert cli.run("migrate").returncode == 0
        yield cli
    finally:
        cli.close()
        if drop is not None:
            drop_database(*drop)


def signed_in(served: Served, email: str, password: str) -> httpx.Client:
    r = httpx.post(f"{served.url}/api/auth/login",
                   json={"email": email, "password": password}, timeout=10)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    return httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=10)


def get(api: httpx.Client, path: str, **params: Any) -> Any:
    r = api.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def eventually_status(api: httpx.Client, message: dict[str, Any], wanted: set[str]) -> str:
    path = f"/api/conversations/{message['conversation_id']}/messages"
    for _ in range(300):
        status = next(m["status"] for m in get(api, path)["data"] if m["id"] == message["id"])
        if status in wanted:
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"message {message['id']} is still {status}")


def test_the_demo_is_a_team_with_customers_in_every_state(demo_cli):
    demo = demo_cli.json("demo")
    served = demo_cli.serve(free_port())
    assert demo["url"] == "http://127.0.0.1:8000/"
    assert (demo["login"], demo["agent_login"], demo["other_agent_login"]) == (
        "owner@demo.example", "agent@demo.example", "agent2@demo.example"
    )
    with signed_in(served, demo["agent_login"], demo["password"]) as api:
        team = get(api, "/api/team")["data"]
        assert sorted(m["role"] for m in team) == ["agent", "agent", "owner"]
        conversations = get(api, "/api/conversations", view="all", limit=200)["data"]
        contacts = get(api, "/api/contacts", limit=200)
        leads = get(api, "/api/leads", limit=200)["data"]
        canned = get(api, "/api/canned-responses")["data"]
        messages = [
            m for c in conversations
            for m in get(api, f"/api/conversations/{c['id']}/messages")["data"]
        ]
    with signed_in(served, demo["login"], demo["password"]) as owner_api:
        channels = get(owner_api, "/api/channels")["data"]

    assert sorted(c["kind"] for c in channels) == ["instagram", "sms", "whatsapp"]
    # Replies succeed without a real platform: the built-in sandbox answers.
    assert all(c["settings"]["sandbox"] for c in channels)

    assert contacts["pagination"]["total"] == 30
    assert all(c["name"] and c["phone"] and c["email"] for c in contacts["data"])
    assert 35 <= len(conversations) <= 45
    statuses = {c["status"] for c in conversations}
    assert statuses == {"open", "pending", "snoozed", "closed"}
    now = datetime.now(UTC)
    for snoozed in (c for c in conversations if c["status"] == "snoozed"):
        assert datetime.fromisoformat(snoozed["snoozed_until"]) > now
    assignees = {c["assignee_id"] for c in conversations}
    assert assignees == {m["id"] for m in team} | {None}
    labels = {label for c in conversations for label in c["labels"]}
    assert {"vip", "billing", "shipping"} <= labels
    assert {c["channel"]["kind"] for c in conversations} == {"whatsapp", "instagram", "sms"}
    assert any(c["unread_count"] > 0 for c in conversations)
    # One customer reaches the shop on two channels: one contact, two conversations.
    by_contact: dict[int, set[str]] = {}
    for c in conversations:
        by_contact.setdefault(c["contact_id"], set()).add(c["channel"]["kind"])
    assert any(len(kinds) > 1 for kinds in by_contact.values())

    days = {m["created_at"][:10] for m in messages}
    assert len(days) >= 2  # spread over the last days, not all just now
    outbound = [m for m in messages if m["direction"] == "outbound" and not m["private"]]
    assert {"delivered", "read"} <= {m["status"] for m in outbound}
    failed = [m for m in outbound if m["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] and failed[0]["error_code"]
    assert any(m["private"] for m in messages)
    with signed_in(served, demo["agent_login"], demo["password"]) as api:
        # The sandbox takes the refused reply when sent again, as the platform would.
        r = api.post(f"/api/messages/{failed[0]['id']}/retry")
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        assert eventually_status(api, failed[0], {"delivered", "read"})
    assert {m["direction"] for m in messages} == {"inbound", "outbound"}

    assert len(leads) >= 5 and all(lead["value"] for lead in leads)
    assert len(canned) == 5
    assert any("{{contact.name}}" in c["content"] for c in canned)
    assert any("{{agent.name}}" in c["content"] for c in canned)

    # Run again: the same organization, nothing added, new working passwords.
    again = demo_cli.json("demo")
    assert again["organization_id"] == demo["organization_id"]
    with signed_in(served, again["other_agent_login"], again["password"]) as api:
        assert len(get(api, "/api/conversations", view="all", limit=200)["data"]) == len(
            conversations
        )
        assert get(api, "/api/contacts")["pagination"]["total"] == 30


def message_lines(stdout: str) -> list[tuple[str, str, str]]:
    """(channel kind, customer, text) of each message `inbox demo --live` said it sent."""
    found = []
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("whatsapp", "instagram", "sms"):
            name, _, text = rest.strip().partition(": ")
            found.append((kind, name, text))
    return found


def test_the_live_demo_writes_in_through_the_signed_webhook_routes(demo_cli):
    served = demo_cli.serve(free_port())
    run = demo_cli.run("demo", "--live", "--url", served.url, "--rate", "20", "--count", "12")
    assert run.returncode == 0, run.stderr
    sent = message_lines(run.stdout)
    assert len(sent) == 12, run.stdout
    password = next(line.split(": ")[1] for line in run.stdout.splitlines()
                    if line.startswith("password: "))
    with signed_in(served, "owner@demo.example", password) as api:
        for kind, name, text in sent:
            found = get(api, "/api/conversations", view="all", q=text, limit=200)["data"]
            assert any(c["contact"]["name"] == name and c["channel"]["kind"] == kind
                       for c in found), (kind, name, text)
        # Known customers write as themselves: only newcomers add contacts.
        newcomers = {name for _, name, _ in sent if name in NEWCOMERS}
        assert get(api, "/api/contacts")["pagination"]["total"] == 30 + len(newcomers)
    # Every one came through a platform's route, signed: none was refused.
    log = served.output()
    assert "/webhooks/" in log and " 401" not in log


def test_ctrl_c_stops_the_live_demo_cleanly(demo_cli):
    served = demo_cli.serve(free_port())
    proc = subprocess.Popen(
        [inbox_executable(), "demo", "--live", "--url", served.url, "--rate", "5"],
        cwd=demo_cli.cwd, env=demo_cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if message_lines(line):
                break
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: " in err and "messages sent" in err
    assert "Traceback" not in err


def test_the_live_demo_says_what_is_wrong_in_one_line(demo_cli):
    nowhere = f"http://127.0.0.1:{free_port()}"
    run = demo_cli.run("demo", "--live", "--url", nowhere, "--count", "1")
    assert run.returncode == 1
    assert f"cannot reach the service at {nowhere}" in run.stderr
    assert "Traceback" not in run.stderr
    for args, complaint in (
        (("--count", "3"), "--rate, --count and --url go with --live"),
        (("--live", "--rate", "0"), "--rate"),
        (("--live", "--count", "0"), "--count"),
        (("--live", "--url", "ftp://x"), "--url"),
    ):
        run = demo_cli.run("demo", *args)
        assert run.returncode == 1 and complaint in run.stderr, (args, run.stderr)
