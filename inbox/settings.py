"""Configuration, read once from the environment (``INBOX_`` prefix)."""

from __future__ import annotations

import base64
import logging
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .ratelimit.addresses import parse_networks
from .ratelimit.rules import Rate, parse_rates

log = logging.getLogger("inbox.settings")

DEV_SECRET_FILE = ".inbox-secret-key"  # noqa: S105 - a file name, not a secret
SECRETS_KEY_HINT = "make one with `inbox secrets new-key`"


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names the variable."""


def async_database_url(url: str) -> str:
    """Map the URL forms people paste (``postgres://``, ``sqlite:///x``) to async drivers."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        # asyncpg speaks ``ssl``, not libpq's ``sslmode``; PaaS URLs carry the latter.
        query = [("ssl" if k == "sslmode" else k, v) for k, v in parse_qsl(parts.query)]
        return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), ""))
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        # Not through urlunsplit: it would fold sqlite:////abs/path into a host name.
        return "sqlite+aiosqlite:" + url.split(":", 1)[1]
    raise ValueError("must start with sqlite:///, postgresql:// or postgres://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INBOX_", extra="ignore", frozen=True)

    env: Literal["production", "development", "test"] = "production"
    database_url: str = Field(
        default="sqlite:///inbox.db",
        validation_alias=AliasChoices("INBOX_DATABASE_URL", "DATABASE_URL"),
    )
    # Seconds the command line waits for PostgreSQL to answer before giving up: a host
    # that drops packets would otherwise hold `inbox serve` at start-up for a minute.
    database_connect_timeout: float = Field(default=10.0, gt=0, le=600)
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("INBOX_REDIS_URL", "REDIS_URL")
    )
    secret_key: str | None = Field(default=None, min_length=16)
    # Fernet keys that channel secrets are encrypted with at rest, comma-separated:
    # the newest encrypts, every one decrypts (the older ones during a rotation).
    secrets_key: SecretStr | None = None
    public_url: str | None = None
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    access_token_ttl: int = Field(default=3600, ge=60, le=30 * 24 * 3600)
    # A console session (the browser's cookie) ends after this many seconds unused, and
    # after session_max whatever its use: a shift-long session slides, a lost laptop's
    # does not live forever.
    session_idle: int = Field(default=12 * 3600, ge=1, le=365 * 24 * 3600)
    session_max: int = Field(default=7 * 24 * 3600, ge=1, le=365 * 24 * 3600)
    # An API client's refresh token lapses this long after it was issued unless it is
    # used (each use hands out the next), and its family after refresh_max whatever its use.
    refresh_ttl: int = Field(default=30 * 24 * 3600, ge=60, le=365 * 24 * 3600)
    refresh_max: int = Field(default=90 * 24 * 3600, ge=60, le=5 * 365 * 24 * 3600)
    host: str = "127.0.0.1"
    port: int = Field(
        default=8000, ge=1, le=65535, validation_alias=AliasChoices("INBOX_PORT", "PORT")
    )
    graph_api_url: str = "https://graph.facebook.com/v21.0"
    twilio_api_url: str = "https://api.twilio.com"
    delivery_max_attempts: int = Field(default=8, ge=1, le=50)
    delivery_timeout: float = Field(default=15.0, gt=0, le=120)
    drain_seconds: float | None = Field(default=None, ge=0, le=300)
    event_retention_days: int = Field(default=7, ge=1, le=365)
    # Webhook requests kept to be read and replayed: days (0: none kept), a size cap in
    # MiB past which the oldest go, and forged requests kept per client address a minute.
    webhook_archive_days: int = Field(default=3, ge=0, le=90)
    webhook_archive_max_mb: int = Field(default=512, ge=1, le=1_000_000)
    webhook_archive_forged_per_minute: int = Field(default=10, ge=0, le=10_000)
    # Live events are written to uvicorn's WebSocket transports as encoded frames where a
    # probe of the server, at the first connection, finds that this works; false sends
    # every frame through ASGI instead (a way out should a uvicorn upgrade break it).
    ws_direct_frames: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": one JSON object per line, for a log pipeline; "text" stays readable.
    log_format: Literal["text", "json"] = "text"
    # GET /metrics asks for this bearer token; unset, only loopback clients may scrape.
    metrics_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Platforms document deliveries larger than any REST request (WhatsApp: 3 MB).
    max_webhook_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # A request's head (request line and headers) over either bound is answered 431
    # before it is read further. Browsers send a few KiB, most of it cookies.
    max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    max_headers: int = Field(default=100, ge=16, le=1000)
    # Seconds a request's head may take to arrive from its first byte (or from the
    # connection), and its body from the end of the head: slow clients are closed.
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    body_timeout: float = Field(default=60.0, gt=0, le=3600)
    # Seconds an idle connection stays open between two requests. Behind a load balancer
    # it must outlast the balancer's own idle timeout (AWS's: 60 s), or the balancer may
    # send a request down a connection just as the service closes it, and answer 502.
    keep_alive_timeout: int = Field(default=5, ge=1, le=3600)
    # Open HTTP and WebSocket connections per server process; past it new ones are
    # answered 503 (a WebSocket: closed with 1013). Keep it below `ulimit -n`.
    max_connections: int = Field(default=10_000, ge=1)
    # Seconds a request's database statement may take, waits for locks included, before
    # it fails and the request answers 503: PostgreSQL's statement_timeout, SQLite's busy
    # timeout. Migrations and maintenance (pruning the outbox) are not bounded by it.
    database_statement_timeout: float = Field(default=5.0, gt=0, le=3600)
    # /readyz answers 503 while the file system of the SQLite database has less free
    # space than this: SQLite fails writes on a full disk. 0: not checked.
    min_free_disk_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # Outgoing webhooks: the delays in seconds before each retry of a delivery (about a
    # day in all), how long a receiver may take to answer, how many requests one
    # endpoint has in flight at once, and whether loopback and private addresses may
    # be sent to (tests, internal networks; link-local and metadata ones never are).
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 60.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_allow_private: bool = False
    # Request budgets per category (count/period, comma-separated, over the defaults of
    # `ratelimit.rules`); "off" limits nothing. Checked at start-up.
    rate_limits: Annotated[dict[str, Rate], NoDecode] = Field(
        default_factory=lambda: parse_rates("")
    )
    # Peers whose X-Forwarded-For is believed (addresses or CIDR networks): the client
    # address that sign-ins and the lead form are limited by.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )
    # WebSockets one user or API key may hold open in one process.
    max_sockets_per_user: int = Field(default=50, ge=1, le=100_000)
    # Attachments (fetched from the platforms, uploaded by agents) are kept here, and
    # none larger than media_max_bytes is fetched or taken.
    media_dir: str = "media"
    media_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # Whether this process runs a worker fetching inbound attachments (any number may).
    media_fetch: bool = True
    # Whether attachments' URLs (named in webhooks) may be on loopback and private
    # addresses (tests); link-local and metadata ones never are.
    media_allow_private: bool = False

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return async_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL, e.g. https://inbox.example.com")
        return value.rstrip("/")

    @field_validator("graph_api_url", "twilio_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("secrets_key")
    @classmethod
    def _secrets_key(cls, value: SecretStr | None) -> SecretStr | None:
        keys = _split_keys(value.get_secret_value()) if value is not None else []
        if not keys:
            return None
        for key in keys:
            try:
                Fernet(key)
            except ValueError:
                raise ValueError(
                    "each key must be 32 url-safe base64-encoded bytes, newest first and "
                    f"comma-separated ({SECRETS_KEY_HINT})"
                ) from None
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _retry_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = [float(v) for v in value.split(",") if v.strip()]
            except ValueError:
                raise ValueError("must be comma-separated seconds, e.g. 5,60,300") from None
        if isinstance(value, list) and (
            not value or len(value) > 50 or any(not 0 <= float(v) <= 7 * 86400 for v in value)
        ):
            raise ValueError("must hold 1 to 50 delays of 0 to 604800 seconds")
        return value

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _rate_limits(cls, value: object) -> object:
        return parse_rates(value) if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            parse_networks(str(v) for v in value)
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @model_validator(mode="after")
    def _secret_required_outside_development(self) -> Settings:
        if self.secret_key is None and self.env == "production":
            raise ValueError(
                "INBOX_SECRET_KEY is required (set INBOX_ENV=development to use a generated one)"
            )
        if self.secrets_key is None and self.env == "production":
            raise ValueError(
                "INBOX_SECRETS_KEY is required: channel secrets are encrypted with it "
                f"({SECRETS_KEY_HINT}; INBOX_ENV=development derives one from the signing key)"
            )
        return self

    @property
    def drain_period(self) -> float:
        """How long /readyz fails before shutdown; a load balancer needs a moment."""
        if self.drain_seconds is not None:
            return self.drain_seconds
        return 5.0 if self.env == "production" else 0.0

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def signing_key(self) -> str:
        """The JWT key; ``with_development_key`` supplies a development one when none is
        set (the app and the commands that sign do)."""
        if self.secret_key is None:
            raise ConfigError("INBOX_SECRET_KEY is not set")
        return self.secret_key

    @cached_property
    def channel_secrets_keys(self) -> list[bytes]:
        """The Fernet keys of channel secrets, newest first: configured, or outside
        production one derived from the signing key (so it lasts as long as that key)."""
        if self.secrets_key is not None:
            return [key.encode() for key in _split_keys(self.secrets_key.get_secret_value())]
        # No warning of its own: production refuses to start without the setting, and
        # the signing key's warning already says a development key is in use.
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"inbox channel secrets"
        ).derive(self.signing_key.encode())
        return [base64.urlsafe_b64encode(derived)]


def _split_keys(value: str) -> list[str]:
    return [key.strip() for key in value.split(",") if key.strip()]


def _variable_name(loc: str) -> str:
    """The variable behind an error, spelled as set: ``PORT=abc`` is about PORT."""
    if not loc.isupper():
        return f"INBOX_{loc.upper()}"
    # Aliased fields report their first alias whichever one was set; name the one
    # that was (the INBOX_ one wins when both are).
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and loc in alias.choices:
            for choice in alias.choices:
                if isinstance(choice, str) and choice in os.environ:
                    return choice
    return loc


def with_development_key(settings: Settings) -> Settings:
    """The settings with a signing key: the configured one, or one generated once and
    kept on disk, so tokens outlive the process that issued them."""
    if settings.secret_key:
        return settings
    path = Path(DEV_SECRET_FILE)
    if path.exists():
        key = path.read_text().strip()
    else:
        key = secrets.token_urlsafe(48)
        path.write_text(key + "\n")
        path.chmod(0o600)
    log.warning(
        "INBOX_SECRET_KEY is not set: using the development key in %s. "
        "Set INBOX_SECRET_KEY in production.",
        path.resolve(),
    )
    return settings.model_copy(update={"secret_key": key})


def load_settings() -> Settings:
    """Read the environment; raise ConfigError with one line naming the variable.

    No key is made here: what signs takes ``with_development_key`` of these."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"][0] if error["loc"] else ""
        name = _variable_name(str(loc))
        message = str(error["msg"]).removeprefix("Value error, ")
        if not loc and message.startswith("INBOX_"):
            raise ConfigError(message) from None
        raise ConfigError(f"{name}: {message}") from None
