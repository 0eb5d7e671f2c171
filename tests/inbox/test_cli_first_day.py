"""The `inbox` command on a newcomer's first day: what it says when something is off,
and whether what it says can be acted on. Real processes, as in test_cli.py."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from servers import create_database, drop_database, free_port
from sqlalchemy.engine import make_url

from inbox.migrate import MIGRATIONS
from tests.inbox.test_cli import Cli, Served, clean_env, inbox_executable

DEV_KEY_WARNING = "INBOX_SECRET_KEY is not set"


@pytest.fixture()
def cli(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path, clean_env(f"sqlite:///{tmp_path / 'inbox.db'}"))
    yield cli
    cli.close()


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def start(cli: Cli, program: str, *args: str, **env: str) -> Served:
    """`inbox serve` started as `program` (a path as typed, or a name looked up on PATH)."""
    port = free_port()
    log = cli.cwd / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [program, "serve", "--port", str(port), *args], cwd=cli.cwd,
            env={**cli.env, "INBOX_LOG_LEVEL": "info", **env},
            stdout=out, stderr=subprocess.STDOUT,
        )
    cli.servers.append(proc)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    served.wait_until_live()
    return served


def login(served: Served, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{served.url}/api/auth/login",
                      json={"email": email, "password": password}, timeout=10)


def printed(stdout: str, key: str) -> str:
    match = re.search(rf"^{key}: (\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


# -- an unreachable database -------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("serve",),
        ("migrate",),
        ("create-org", "--name", "Acme"),
        ("token", "--email", "ana@acme.example"),
        ("reset-password", "--email", "ana@acme.example"),
        ("demo",),
    ],
    ids=lambda command: command[0],
)
def test_a_postgresql_that_refuses_connections_is_one_line_naming_where(cli, command):
    port = free_port()  # closed again: nothing listens there
    url = f"postgresql://ana:s3cret-password@127.0.0.1:{port}/inbox"
    result = cli.run(*command, INBOX_DATABASE_URL=url)
    assert result.returncode == 1
    assert only_line(result) == (
        f"error: INBOX_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port}: "
        "Connection refused"
    )
    assert result.stdout == ""


def test_the_error_names_the_variable_the_user_set(cli):
    port = free_port()
    env = {k: v for k, v in cli.env.items() if k != "INBOX_DATABASE_URL"}
    result = Cli(cli.cwd, {**env, "DATABASE_URL": f"postgres://u@127.0.0.1:{port}/x"}).run("serve")
    assert result.returncode == 1
    assert only_line(result) == (
        f"error: DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port}: "
        "Connection refused"
    )


def test_a_postgresql_that_never_answers_is_given_up_on_after_the_connect_timeout(cli):
    with socket.socket() as silent:
        # The kernel completes the TCP handshake; no PostgreSQL ever speaks.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [inbox_executable(), "serve"], cwd=cli.cwd, capture_output=True, text=True,
            env={**cli.env, "INBOX_DATABASE_URL": f"postgresql://u@127.0.0.1:{port}/x",
                 "INBOX_DATABASE_CONNECT_TIMEOUT": "1"},
            timeout=30,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert only_line(result) == (
        f"error: INBOX_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port}: "
        "no answer within 1 s (INBOX_DATABASE_CONNECT_TIMEOUT)"
    )
    assert elapsed < 15  # the interpreter's start-up plus the one second


# -- which database -------------------------------------------------------------------------


def test_a_command_run_in_another_directory_refuses_to_make_a_new_database(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cli = Cli(elsewhere, clean_env("sqlite:///inbox.db"))  # relative, as by default
    database = elsewhere / "inbox.db"

    refused = cli.run("create-org", "--name", "Acme")
    assert refused.returncode == 1
    assert only_line(refused) == (
        f"error: no database at {database}: run this from the service's directory, "
        "set INBOX_DATABASE_URL, or pass --create"
    )
    token = cli.run("token", "--email", "ana@acme.example")
    assert token.returncode == 1
    assert only_line(token).startswith(f"error: no database at {database}: ")
    assert not database.exists()

    created = cli.run("create-org", "--name", "Acme", "--create")
    assert created.returncode == 0, created.stderr
    assert created.stderr.splitlines() == [f"database: {database}"]
    assert database.exists()
    again = cli.run("create-org", "--name", "Beta")
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines() == [f"database: {database}"]
    assert again.stdout.strip() == "created organization 2: Beta"


def test_migrate_and_writes_name_the_postgresql_database_without_its_password(
    postgres_server_url, tmp_path
):
    url, name = create_database(postgres_server_url)
    try:
        parts = make_url(url)
        password = "never-printed-password"
        # A password the server is not asked for: it trusts local connections.
        cli = Cli(tmp_path, clean_env(
            parts.set(password=password).render_as_string(hide_password=False)))
        shown = (f"postgresql://{parts.username}:***@{parts.host}:{parts.port or 5432}"
                 f"/{parts.database}")
        migrated = cli.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout.splitlines()[-1].startswith(
            f"database {shown} is at the newest schema (revision ")
        org = cli.run("create-org", "--name", "Acme")
        assert org.returncode == 0, org.stderr
        assert org.stderr.splitlines() == [f"database: {shown}"]
        assert password not in migrated.stdout + migrated.stderr + org.stdout + org.stderr
    finally:
        drop_database(postgres_server_url, name)


def test_migrate_says_what_it_applied_and_where_in_a_line_each(cli):
    scripts = list(reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions())))
    head = scripts[-1].revision
    summary = f"database {cli.cwd / 'inbox.db'} is at the newest schema (revision {head})"
    # At the default log level, where alembic would narrate its set-up.
    first = cli.run("migrate", INBOX_LOG_LEVEL="info")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert first.stdout.splitlines() == [
        *(f"applied {s.revision}: {(s.doc or '').strip()}" for s in scripts), summary]
    again = cli.run("migrate", INBOX_LOG_LEVEL="info")
    assert (again.returncode, again.stdout.splitlines(), again.stderr) == (0, [summary], "")


# -- passwords ------------------------------------------------------------------------------


def test_demo_prints_working_logins_every_time(cli):
    served = cli.serve(free_port())
    try:
        first = cli.json("demo")
        assert login(served, first["login"], first["password"]).status_code == 200

        second = cli.run("demo")
        assert second.returncode == 0, second.stderr
        assert ("the demo organization exists already; its users' passwords were reset"
                in second.stdout)
        assert printed(second.stdout, "organization_id") == str(first["organization_id"])
        password = printed(second.stdout, "password")
        for email in (printed(second.stdout, "login"), printed(second.stdout, "agent_login")):
            assert login(served, email, password).status_code == 200, email
        assert login(served, first["login"], first["password"]).status_code == 401
    finally:
        served.terminate()


def test_reset_password_generates_or_sets_a_password_that_logs_in(cli):
    assert cli.run("migrate").returncode == 0
    org = cli.json("create-org", "--name", "Acme")
    user = cli.json("create-user", "--org", str(org["id"]), "--email", "ana@acme.example",
                    "--password", "first password")
    served = cli.serve(free_port())
    try:
        generated = cli.run("reset-password", "--email", "Ana@Acme.example")
        assert generated.returncode == 0, generated.stderr
        password = printed(generated.stdout, "password")
        assert login(served, "ana@acme.example", password).status_code == 200
        assert login(served, "ana@acme.example", "first password").status_code == 401

        chosen = cli.json("reset-password", "--email", "ana@acme.example",
                          "--password", "chosen password")
        assert chosen == {"id": user["id"], "email": "ana@acme.example"}
        assert login(served, "ana@acme.example", "chosen password").status_code == 200
        assert login(served, "ana@acme.example", password).status_code == 401
    finally:
        served.terminate()

    unknown = cli.run("reset-password", "--email", "nobody@acme.example")
    assert unknown.returncode == 1
    last = unknown.stderr.strip().splitlines()[-1]
    assert last == "error: no user with email nobody@acme.example"
    assert "Traceback" not in unknown.stderr and unknown.stdout == ""
    short = cli.run("reset-password", "--email", "ana@acme.example", "--password", "short")
    assert short.returncode == 2
    assert only_line(short) == "error: --password must have at least 8 characters"


def test_a_user_created_without_a_name_is_named_after_their_email(cli):
    assert cli.run("migrate").returncode == 0
    cli.json("create-org", "--name", "Acme")
    created = cli.run("create-user", "--org", "1", "--email", "ana.souza@acme.example",
                      "--password", "correct horse")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created agent 1: ana.souza@acme.example (ana.souza)"
    served = cli.serve(free_port())
    try:
        token = login(served, "ana.souza@acme.example", "correct horse").json()["access_token"]
        me = httpx.get(f"{served.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["user"]["name"] == "ana.souza"
    finally:
        served.terminate()


# -- serve --------------------------------------------------------------------------------


def _hinted_commands(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines()
            if line.startswith("  ") and " create-" in line]


def test_the_first_user_hint_names_the_command_as_it_can_be_typed_here(cli):
    bin_dir = str(Path(inbox_executable()).parent)
    system_path = os.pathsep.join(
        p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != bin_dir)
    (cli.cwd / "tools").mkdir()
    (cli.cwd / "tools" / "inbox").symlink_to(inbox_executable())

    served = start(cli, "tools/inbox", PATH=system_path)
    served.terminate()
    hinted = _hinted_commands(served.output())
    assert hinted[0] == "tools/inbox create-org --name 'Acme'", served.output()
    assert hinted[1].startswith("tools/inbox create-user ")
    # Pasted into a shell where `inbox` is not on PATH, it runs.
    pasted = subprocess.run(hinted[0], shell=True, cwd=cli.cwd, capture_output=True, text=True,  # noqa: S602
                            env={**cli.env, "PATH": system_path}, timeout=60)
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.strip() == "created organization 1: Acme"

    on_path = f"{bin_dir}{os.pathsep}{system_path}"
    served = start(cli, "inbox", PATH=on_path)
    served.terminate()
    assert _hinted_commands(served.output())[0] == "inbox create-org --name 'Acme'"


@pytest.mark.parametrize("workers", [1, 2])
def test_the_development_key_warning_is_printed_once_per_start(cli, workers, request):
    env = {k: v for k, v in cli.env.items() if k != "INBOX_SECRET_KEY"}
    cli.env = {**env, "INBOX_ENV": "development"}
    if workers > 1:
        cli.env["INBOX_REDIS_URL"] = request.getfixturevalue("redis_url")
    served = start(cli, inbox_executable(), "--workers", str(workers))
    try:
        assert httpx.get(f"{served.url}/readyz").status_code == 200
    finally:
        served.terminate()
    output = served.output()
    assert output.count(DEV_KEY_WARNING) == 1, output
    assert f"database: {cli.cwd / 'inbox.db'}" in output
    # Handed on to the server process, the key still shows in no log line.
    key = (cli.cwd / ".inbox-secret-key").read_text().strip()
    assert key and key not in output


def test_serve_on_a_taken_port_says_so_in_one_line(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        results = [cli.run("serve", "--port", str(port)), cli.run("serve", INBOX_PORT=str(port))]
    for result in results:
        assert result.returncode == 1
        assert only_line(result) == (
            f"error: 127.0.0.1:{port} is in use; set INBOX_PORT (or PORT) or pass --port "
            "to choose another"
        )
    assert not (cli.cwd / "inbox.db").exists()  # stopped before anything else
