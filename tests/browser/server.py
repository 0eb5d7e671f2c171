"""A real `inbox serve` for the browser tests: its own SQLite file, an organization with
three users and a WhatsApp channel whose sends go to a fake platform API."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from inbox import migrate
from inbox.db import Database
from inbox.services.accounts import create_organization, create_user
from inbox.settings import async_database_url
from tests.connectors.fake_platform import FakePlatform
from tests.inbox.platforms import Connected, meta_headers, whatsapp_status, whatsapp_text
from tests.servers import free_port, wait_for_port

INBOX = str(Path(sys.executable).with_name("inbox"))
SECRET_KEY = "browser-test-signing-key-long-enough"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    role: str
    password: str = PASSWORD


class ConsoleServer:
    """The service as a user meets it: a process of its own, reached over loopback."""

    def __init__(self, workdir: Path, platform: FakePlatform) -> None:
        self.workdir = workdir
        self.fake_platform = platform
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "INBOX_ENV": "test",
            "INBOX_SECRET_KEY": SECRET_KEY,
            "INBOX_DATABASE_URL": f"sqlite:///{workdir / 'inbox.db'}",
            "INBOX_PORT": str(self.port),
            "INBOX_GRAPH_API_URL": platform.base_url,
            "INBOX_TWILIO_API_URL": platform.base_url,
            "INBOX_DELIVERY_MAX_ATTEMPTS": "1",
            "INBOX_LOG_LEVEL": "warning",
            # The browser signs in and reads far more often than a person would.
            "INBOX_RATE_LIMITS": (
                "auth=10000/minute,read=100000/minute,write=100000/minute,invalid=10000/minute"
            ),
            # The fake platform serves media and takes callbacks on loopback.
            "INBOX_MEDIA_ALLOW_PRIVATE": "true",
            "INBOX_WEBHOOK_ALLOW_PRIVATE": "true",
        }
        for name in ("INBOX_REDIS_URL", "REDIS_URL", "DATABASE_URL", "PORT"):
            self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._wamids = itertools.count(1)
        self._tokens: dict[int, str] = {}
        self._log = open(workdir / "server.log", "ab")  # noqa: SIM115 - lives with the server

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [INBOX, *args], env=self.env, cwd=self.workdir, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [INBOX, "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=self._log,
        )
        wait_for_port(self.port, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url} never became ready; see {self.workdir}/server.log")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        self._log.flush()
        text = (self.workdir / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        self._log.close()

    # -- set-up, as an operator and an admin would do it -------------------------

    def seed(self) -> None:
        """The schema and the owner, in this process: three CLI start-ups per test
        module cost more than the browser does."""
        # In a thread of its own: Playwright's sync API keeps an event loop running in
        # this one, and both the migrations and the library are asyncio.
        with ThreadPoolExecutor(1) as pool:
            self.org_id, owner = pool.submit(self._seed_owner).result()
        self.admin = User(owner, "olivia@acme.example", "Olivia Owner", "owner")

    def _seed_owner(self) -> tuple[int, int]:
        migrate.upgrade(self.env["INBOX_DATABASE_URL"])
        return asyncio.run(self._create_owner())

    async def _create_owner(self) -> tuple[int, int]:
        db = Database(async_database_url(self.env["INBOX_DATABASE_URL"]))
        try:
            org = await create_organization(db, "Acme Support")
            assert org.id is not None
            user = await create_user(
                db, org.id, email="olivia@acme.example", password=PASSWORD, role="owner",
                name="Olivia Owner",
            )
            assert user.id is not None
            return org.id, user.id
        finally:
            await db.dispose()

    def seed_after_start(self) -> None:
        """What goes through the REST API: the agents and the channel."""
        with self.api(self.admin) as admin:
            self._seed_team_and_channel(admin)

    def _seed_team_and_channel(self, admin: httpx.Client) -> None:
        self.agent = self._user(admin, "ana@acme.example", "Ana Agent")
        self.agent2 = self._user(admin, "bruno@acme.example", "Bruno Agent")
        settings = {
            "phone_number_id": "106540352242922",
            "access_token": "wa-access-token",
            "app_secret": "wa-app-secret",
            "verify_token": "wa-verify-token",
        }
        r = admin.post(
            "/api/channels", json={"kind": "whatsapp", "name": "WhatsApp", "settings": settings}
        )
        assert r.status_code == 201, r.text
        channel = r.json()
        self.whatsapp = Connected(channel["id"], "whatsapp", channel["routing_key"], settings)

    def _user(self, admin: httpx.Client, email: str, name: str) -> User:
        r = admin.post(
            "/api/users",
            json={"email": email, "name": name, "password": PASSWORD, "role": "agent"},
        )
        assert r.status_code == 201, r.text
        return User(int(r.json()["id"]), email, name, "agent")

    def api(self, user: User) -> httpx.Client:
        """A REST client signed in as ``user`` with an access token (close it)."""
        token = self._tokens.get(user.id)
        if token is None:
            # Signed in once per user: each sign-in verifies a deliberately slow hash.
            r = httpx.post(
                f"{self.url}/api/auth/login",
                json={"email": user.email, "password": user.password},
            )
            assert r.status_code == 200, r.text
            token = self._tokens[user.id] = r.json()["access_token"]
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    # -- what a platform sends ---------------------------------------------------

    def send_whatsapp_text(
        self, from_phone: str, text: str, name: str = "Sheena Nelson", *, later: int = 0
    ) -> str:
        """A customer's message, as a signed webhook through the real route, stamped now
        (WhatsApp's whole seconds) or ``later`` seconds on, for an order within a second."""
        wamid = f"wamid.browser{next(self._wamids):06d}"
        body = whatsapp_text(
            self.whatsapp, wamid, text, wa_id=from_phone.lstrip("+"), name=name,
            timestamp=int(time.time()) + later,
        )
        self._post_whatsapp(body)
        return wamid

    def send_whatsapp_status(self, wamid: str, status: str, recipient: str) -> None:
        body = whatsapp_status(
            self.whatsapp, wamid, status, recipient=recipient.lstrip("+"),
            timestamp=int(time.time()),
        )
        self._post_whatsapp(body)

    def _post_whatsapp(self, body: bytes) -> None:
        r = httpx.post(
            f"{self.url}/webhooks/whatsapp",
            content=body,
            headers=meta_headers(body, self.whatsapp.secret),
        )
        assert r.status_code == 200, r.text

    def sends(self) -> list[Any]:
        """What the platform received: message sends, not profile look-ups."""
        return [
            r for r in self.fake_platform.requests
            if r.method == "POST" and r.path.endswith("/messages")
        ]


