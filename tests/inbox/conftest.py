"""The service under test: one migrated database and one live server per backend.

Every test makes its own organizations, so tests share a server without sharing data.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from servers import create_database, drop_database
from support import Api, BackgroundLoop, LiveServer

from inbox import migrate
from inbox.app import create_app
from inbox.db import Database
from inbox.models import Channel, Contact, Conversation, Message, utcnow
from inbox.security import issue_token
from inbox.services import accounts
from inbox.settings import Settings, async_database_url
from inbox.web.redaction import redact_server_logs
from tests.connectors.fake_platform import FakePlatform

SECRET = "test-signing-key-that-is-long-enough"
SEED_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HIGH_RATE_LIMITS = (
    "auth=100000/minute,read=1000000/minute,write=1000000/minute,leads=100000/minute,"
    "invalid=100000/minute"
)
BACKENDS = ["sqlite", "postgres"]
_seq = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out, rather than skip, the backend a `backend`-marked test does not apply to:
    a skip in the report would read as something missing on the machine."""
    kept, left_out = [], []
    for item in items:
        marker = item.get_closest_marker("backend")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec is not None else None
        if marker is not None and backend is not None and backend not in marker.args:
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2's own test profile: real hashing, without a costly hash for every test user."""
    from argon2 import PasswordHasher
    from argon2.profiles import CHEAPEST

    from inbox import security

    production = security._hasher
    security._hasher = PasswordHasher.from_parameters(CHEAPEST)
    yield
    security._hasher = production


@pytest.fixture(scope="session")
def loop() -> Iterator[BackgroundLoop]:
    background = BackgroundLoop()
    yield background
    background.close()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        directory = tempfile.mkdtemp(prefix="inbox-sqlite-")
        url = async_database_url(f"sqlite:///{Path(directory) / 'inbox.db'}")
        migrate.upgrade(url)
        yield url
        return
    server_url = request.getfixturevalue("postgres_server_url")
    url, name = create_database(server_url)
    url = async_database_url(url)
    migrate.upgrade(url)
    yield url
    drop_database(server_url, name)


@pytest.fixture()
def own_database(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    """A fresh migrated database of the same backend, that no other server works on."""
    if database_url.startswith("sqlite"):
        url = async_database_url(f"sqlite:///{Path(tempfile.mkdtemp()) / 'own.db'}")
        migrate.upgrade(url)
        yield url
        return
    server_url = request.getfixturevalue("postgres_server_url")
    url, name = create_database(server_url)
    url = async_database_url(url)
    migrate.upgrade(url)
    yield url
    drop_database(server_url, name)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "secret_key": SECRET,
        "redis_url": None,
        "allowed_origins": [],
        "media_dir": tempfile.mkdtemp(prefix="inbox-media-"),
        # Attachments are fetched only by the servers of the tests about them.
        "media_fetch": False,
        # Webhook receivers in tests listen on 127.0.0.1, and a retry schedule of a day
        # would outlast any test.
        "webhook_allow_private": True,
        # The fake platform serves attachments from 127.0.0.1 as well.
        "media_allow_private": True,
        "webhook_retry_schedule": [0.2, 0.2],
        "webhook_timeout": 2.0,
        # Budgets no test spends by accident; the rate-limit tests set their own.
        "rate_limits": HIGH_RATE_LIMITS,
        # Fan-out tests hold more sockets with one key than the default cap allows.
        "max_sockets_per_user": 1000,
        **overrides,
    }
    return Settings(**values)


@dataclass
class Service:
    """A running service and the ways a test reaches it."""

    url: str
    ws_url: str
    settings: Settings
    db: Database
    loop: BackgroundLoop
    dialect: str
    clients: list[Api] = field(default_factory=list)
    # The Starlette app, for tests that reach into the running service (its Live).
    app: Any = None

    def client(self, token: str | None = None, **kw: Any) -> Api:
        api = Api(self.url, token, **kw)
        self.clients.append(api)
        return api

    def run(self, coro: Any) -> Any:
        return self.loop.run(coro)

    def token_for(self, user: Any, ttl: int = 3600) -> str:
        return issue_token(
            user_id=user.id,
            organization_id=user.organization_id,
            role=user.role,
            key=SECRET,
            ttl_seconds=ttl,
        )

    def new_tenant(self, name: str | None = None) -> Tenant:
        n = next(_seq)
        org = self.run(accounts.create_organization(self.db, name or f"Org {n}"))
        owner = self.run(
            accounts.create_user(
                self.db,
                org.id,
                email=f"owner{n}@t{n}.example",
                password="owner-password",
                role="owner",
                name=f"Owner {n}",
            )
        )
        return Tenant(self, org.id, owner, self.client(self.token_for(owner)))


@dataclass
class Tenant:
    """One organization with an owner; makes more users and keys on demand."""

    service: Service
    org_id: int
    owner: Any
    api: Api

    def user(self, role: str = "agent", password: str = "user-password") -> tuple[Any, Api]:
        n = next(_seq)
        user = self.service.run(
            accounts.create_user(
                self.service.db,
                self.org_id,
                email=f"{role}{n}@t{self.org_id}.example",
                password=password,
                role=role,
                name=f"{role.title()} {n}",
            )
        )
        return user, self.service.client(self.service.token_for(user))

    def conversation(
        self,
        *,
        messages: int = 1,
        kind: str = "whatsapp",
        unread: int | None = None,
        name: str = "Sam Sender",
    ) -> Any:
        """A contact writing in on a channel of this tenant, with inbound messages."""
        return self.service.run(
            seed_conversation(
                self.service.db, self.org_id, messages=messages, kind=kind, unread=unread, name=name
            )
        )

    def api_key(self, role: str = "agent", scopes: tuple[str, ...] = ("api",)) -> str:
        _row, key = self.service.run(
            accounts.create_api_key(
                self.service.db, self.org_id, name="test key", role=role, scopes=scopes
            )
        )
        return key


async def seed_conversation(
    db: Database, org_id: int, *, messages: int, kind: str, unread: int | None, name: str
) -> Conversation:
    n = next(_seq)
    now = utcnow()
    async with db.session() as session:
        channel = Channel(
            organization_id=org_id,
            kind="generic",
            name=f"{kind} {n}",
            routing_key=None,
            # Replies may be written (a generic channel without a callback refuses them)
            # and fail to arrive: nothing listens on the discard port.
            settings={"callback_url": "http://127.0.0.1:9/replies", "callback_secret": SEED_SECRET},
        )
        contact = Contact(organization_id=org_id, name=name, phone=f"+1415555{n:04d}")
        session.add_all([channel, contact])
        await session.flush()
        conv = Conversation(
            organization_id=org_id,
            contact_id=contact.id,
            channel_id=channel.id,
            unread_count=messages if unread is None else unread,
            last_message_at=now,
            last_message_preview=f"message {messages}",
        )
        session.add(conv)
        await session.flush()
        for i in range(1, messages + 1):
            session.add(
                Message(
                    organization_id=org_id,
                    conversation_id=conv.id,
                    channel_id=channel.id,
                    direction="inbound",
                    sender_contact_id=contact.id,
                    content=f"message {i}",
                    status="received",
                    external_id=f"ext-{n}-{i}",
                    platform_timestamp=now,
                )
            )
        await session.commit()
    return conv


@pytest.fixture(scope="session", autouse=True)
def server_logs_redacted() -> None:
    """uvicorn's own log lines redacted, as `inbox serve` sets up its process."""
    redact_server_logs()


@pytest.fixture(scope="session")
def platform() -> Iterator[FakePlatform]:
    """The platforms' send APIs, faked by one recording HTTP server for the session."""
    with FakePlatform() as fake:
        yield fake


@pytest.fixture(scope="session")
def service(database_url: str, loop: BackgroundLoop, platform: FakePlatform) -> Iterator[Service]:
    settings = make_settings(
        database_url, graph_api_url=platform.base_url, twilio_api_url=platform.base_url
    )
    app = create_app(settings)
    server = LiveServer(app, loop)
    server.start()
    db = Database(database_url)
    svc = Service(server.url, server.ws_url, settings, db, loop, db.dialect, app=app)
    yield svc
    for client in svc.clients:
        client.close()
    loop.run(db.dispose())
    server.stop()


@pytest.fixture()
def tenant(service: Service) -> Tenant:
    return service.new_tenant()


@pytest.fixture()
def other_tenant(service: Service) -> Tenant:
    return service.new_tenant()
