"""The `inbox` command, run as a newcomer would: a real process on a real database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from servers import create_database, drop_database, free_port

SECRET = "cli-test-signing-key-long-enough"
# The key channel secrets are encrypted with (production requires one).
SECRETS_KEY = "pT9qzcXqG7QyqkS7ZP0ZqvLo7Wb0mE4o9c2sWlYk3Ew="
# Variables of the machine running the tests that would change what the command sees.
FOREIGN = ("DATABASE_URL", "REDIS_URL", "PORT")


def inbox_executable() -> str:
    beside = Path(sys.executable).parent / "inbox"
    found = str(beside) if beside.exists() else shutil.which("inbox")
    assert found, "the inbox console script is not installed"
    return found


@dataclass
class Cli:
    """The `inbox` command with its own environment and working directory."""

    cwd: Path
    env: dict[str, str]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [inbox_executable(), *args], cwd=self.cwd, env={**self.env, **env},
            capture_output=True, text=True, timeout=120,
        )

    def json(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data

    def serve(self, port: int) -> Served:
        log = self.cwd / f"serve-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [inbox_executable(), "serve", "--port", str(port)], cwd=self.cwd,
                env={**self.env, "INBOX_LOG_LEVEL": "info"}, stdout=out, stderr=subprocess.STDOUT,
            )
        self.servers.append(proc)
        served = Served(proc, f"http://127.0.0.1:{port}", log)
        served.wait_until_live()
        return served

    def close(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def wait_until_live(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"inbox serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/livez", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"inbox serve did not answer /livez:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self) -> None:
        """SIGTERM, as a process manager stops it: a graceful shutdown, then exit."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        # A stop asked for is a clean exit (`make run` must not end in "Error 143").
        assert code == 0, self.output()
        assert "Application shutdown complete" in self.output()


def clean_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("INBOX_") and k not in FOREIGN}
    return {**env, "INBOX_DATABASE_URL": database_url, "INBOX_SECRET_KEY": SECRET,
            "INBOX_SECRETS_KEY": SECRETS_KEY, "INBOX_LOG_LEVEL": "warning",
            "INBOX_DRAIN_SECONDS": "0", **extra}


@pytest.fixture()
def sqlite_cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path, clean_env(f"sqlite:///{tmp_path / 'inbox.db'}"))
    yield cli
    cli.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    if request.param == "sqlite":
        yield from _cli(tmp_path, f"sqlite:///{tmp_path / 'inbox.db'}")
        return
    server_url = request.getfixturevalue("postgres_server_url")
    url, name = create_database(server_url)
    try:
        yield from _cli(tmp_path, url)
    finally:
        drop_database(server_url, name)


def _cli(tmp_path: Path, url: str) -> Iterator[Cli]:
    cli = Cli(tmp_path, clean_env(url))
    yield cli
    cli.close()


def test_a_newcomer_sets_up_an_organization_and_calls_the_api(any_cli):
    cli = any_cli
    assert cli.run("migrate").returncode == 0
    org = cli.json("create-org", "--name", "Acme")
    assert isinstance(org["id"], int) and org["name"] == "Acme"
    user = cli.json("create-user", "--org", str(org["id"]), "--email", "Boss@Acme.example",
                    "--password", "correct horse battery", "--role", "owner")
    assert user["organization_id"] == org["id"]
    assert user["email"] == "boss@acme.example" and user["role"] == "owner"
    key = cli.json("create-api-key", "--org", str(org["id"]), "--name", "dashboard")
    assert isinstance(key["id"], int)
    assert key["key"].startswith(key["prefix"])
    token = cli.json("token", "--email", "boss@acme.example")
    claims = jwt.decode(token["access_token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user["id"]) and claims["org"] == org["id"]
    assert claims["role"] == "owner" and "exp" in claims
    channel = cli.json(
        "create-channel", "--org", str(org["id"]), "--kind", "sms", "--name", "Front desk",
        "--set", "phone_number=+15550001111", "--set", "account_sid=AC" + "a1" * 16,
        "--set", "auth_token=twilio-auth-token-secret",
    )
    assert channel["kind"] == "sms" and isinstance(channel["id"], int)
    assert channel["routing_key"] == "+15550001111"
    assert "twilio-auth-token-secret" not in json.dumps(channel)
    assert "auth_token" not in channel["settings"]

    served = cli.serve(free_port())
    try:
        with httpx.Client(base_url=served.url, timeout=10) as http:
            me = http.get("/api/auth/me",
                          headers={"Authorization": f"Bearer {token['access_token']}"})
            assert me.status_code == 200, me.text
            assert me.json()["user"]["email"] == "boss@acme.example"
            by_key = http.get("/api/channels", headers={"X-Api-Key": key["key"]})
            assert by_key.status_code == 403  # agent keys cannot manage channels
            contacts = http.get("/api/contacts", headers={"X-Api-Key": key["key"]})
            assert contacts.status_code == 200
            login = http.post("/api/auth/login", json={"email": "boss@acme.example",
                                                       "password": "correct horse battery"})
            assert login.status_code == 200
            listed = http.get("/api/channels", headers={
                "Authorization": f"Bearer {login.json()['access_token']}"}).json()
            assert [c["name"] for c in listed["data"]] == ["Front desk"]
            assert "twilio-auth-token-secret" not in json.dumps(listed)
    finally:
        served.terminate()
    assert "twilio-auth-token-secret" not in served.output()


def test_a_duplicate_email_fails_with_a_clear_message(sqlite_cli):
    assert sqlite_cli.run("migrate").returncode == 0
    org = sqlite_cli.run("create-org", "--name", "Dup")
    assert org.returncode == 0
    assert org.stdout.strip() == "created organization 1: Dup"  # without --json: for people
    args = ("create-user", "--org", "1", "--password", "long-enough-password")
    assert sqlite_cli.run(*args, "--email", "same@dup.example").returncode == 0
    again = sqlite_cli.run(*args, "--email", "SAME@dup.example")
    assert again.returncode == 1
    assert "email: is already in use" in again.stderr
    assert "Traceback" not in again.stderr


def test_unknown_organizations_and_bad_channel_settings_fail_clearly(sqlite_cli):
    assert sqlite_cli.run("migrate").returncode == 0
    missing = sqlite_cli.run("create-channel", "--org", "999", "--kind", "generic",
                             "--name", "X")
    assert missing.returncode == 1
    assert "Organization 999 not found" in missing.stderr
    bad = sqlite_cli.run("create-channel", "--org", "999", "--kind", "sms",
                         "--name", "S", "--set", "phone_number=+15550002222",
                         "--set", "account_sid=nope", "--set", "auth_token=t")
    assert bad.returncode == 1
    assert "settings.account_sid" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_demo_in_development_needs_no_secret_key(sqlite_cli):
    env = {k: v for k, v in sqlite_cli.env.items() if k != "INBOX_SECRET_KEY"}
    cli = Cli(sqlite_cli.cwd, {**env, "INBOX_ENV": "development"})
    assert cli.run("migrate").returncode == 0
    demo = cli.json("demo")
    assert isinstance(demo["organization_id"], int)
    assert demo["login"] == "owner@demo.example"
    first = cli.run("token", "--email", demo["login"])
    assert first.returncode == 0
    assert "INBOX_SECRET_KEY" in first.stderr  # a warning, not an error
    # The generated key is kept, so tokens outlive the process that issued them.
    key = (sqlite_cli.cwd / ".inbox-secret-key").read_text().strip()
    second = cli.run("token", "--email", demo["login"])
    for result in (first, second):
        claims = jwt.decode(result.stdout.strip(), key, algorithms=["HS256"])
        assert claims["org"] == demo["organization_id"] and claims["role"] == "owner"
    assert cli.json("demo")["organization_id"] == demo["organization_id"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"INBOX_PORT": "abc"}, "INBOX_PORT"),
        ({"INBOX_DATABASE_URL": "mysql://x"}, "INBOX_DATABASE_URL"),
        ({"INBOX_SECRET_KEY": None}, "INBOX_SECRET_KEY"),  # unset, outside development
        ({"INBOX_SECRET_KEY": "short"}, "INBOX_SECRET_KEY"),
        ({"INBOX_SECRETS_KEY": None}, "INBOX_SECRETS_KEY"),  # unset, outside development
        ({"INBOX_SECRETS_KEY": "not-a-fernet-key"}, "INBOX_SECRETS_KEY"),
        ({"INBOX_SECRETS_KEY": f"{SECRETS_KEY},short"}, "INBOX_SECRETS_KEY"),
        ({"INBOX_REDIS_URL": "http://cache"}, "INBOX_REDIS_URL"),
        ({"INBOX_ACCESS_TOKEN_TTL": "-5"}, "INBOX_ACCESS_TOKEN_TTL"),
        ({"INBOX_DATABASE_CONNECT_TIMEOUT": "0"}, "INBOX_DATABASE_CONNECT_TIMEOUT"),
    ],
)
def test_a_bad_configuration_value_stops_with_one_line_naming_it(sqlite_cli, env, variable):
    changed = {**sqlite_cli.env, **env}
    result = Cli(sqlite_cli.cwd, {k: v for k, v in changed.items() if v is not None}).run("serve")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert result.stdout == ""


def test_serve_on_an_empty_database_migrates_explains_and_stops_on_sigterm(sqlite_cli):
    assert not (sqlite_cli.cwd / "inbox.db").exists()
    served = sqlite_cli.serve(free_port())
    try:
        assert httpx.get(f"{served.url}/livez").json() == {"status": "ok"}
        assert httpx.get(f"{served.url}/readyz").status_code == 200
        # Migrated by itself: the API answers (401, not a database error).
        assert httpx.get(f"{served.url}/api/contacts").status_code == 401
    finally:
        served.terminate()
    output = served.output()
    assert "inbox create-org" in output and "inbox create-user" in output
    assert "inbox demo" in output
    assert sqlite_cli.run("create-org", "--name", "After").returncode == 0


def test_on_sigterm_readiness_fails_first_then_the_server_stops(sqlite_cli):
    sqlite_cli.env["INBOX_DRAIN_SECONDS"] = "2"
    served = sqlite_cli.serve(free_port())
    assert httpx.get(f"{served.url}/readyz").status_code == 200
    served.proc.send_signal(signal.SIGTERM)
    # Draining: still serving, but a load balancer is told to stop sending traffic.
    r = httpx.get(f"{served.url}/readyz")
    assert (r.status_code, r.json()["status"]) == (503, "draining")
    assert httpx.get(f"{served.url}/livez").status_code == 200
    assert served.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in served.output()


def test_several_workers_need_redis(sqlite_cli):
    result = sqlite_cli.run("serve", "--port", str(free_port()), "--workers", "2")
    assert result.returncode == 2
    assert "INBOX_REDIS_URL" in result.stderr


def test_serve_on_postgresql_refuses_an_unmigrated_database(postgres_server_url, tmp_path):
    url, name = create_database(postgres_server_url)
    try:
        cli = Cli(tmp_path, clean_env(url))
        result = cli.run("serve", "--port", str(free_port()))
        assert result.returncode == 1
        assert "inbox migrate" in result.stderr
        assert cli.run("migrate").returncode == 0
    finally:
        drop_database(postgres_server_url, name)
