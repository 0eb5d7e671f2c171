"""Configuration from the environment: the URL forms people paste, PaaS names, clear errors."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from inbox.settings import (
    DEV_SECRET_FILE,
    ConfigError,
    Settings,
    async_database_url,
    load_settings,
    with_development_key,
)

KEY = "a-configured-signing-key"
SECRETS_KEY = "pT9qzcXqG7QyqkS7ZP0ZqvLo7Wb0mE4o9c2sWlYk3Ew="
OLD_SECRETS_KEY = "q0cGm2VJb1Zy9h8iV3l5Ckq4nU7rT0wXe6sYd2aBfGo="


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Only what a test sets is configured; the working directory is the test's own."""
    for name in list(os.environ):
        if name.startswith("INBOX_") or name in ("DATABASE_URL", "REDIS_URL", "PORT"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///inbox.db", "sqlite+aiosqlite:///inbox.db"),
        ("sqlite:///data/inbox.db", "sqlite+aiosqlite:///data/inbox.db"),
        ("sqlite:////var/lib/inbox/inbox.db", "sqlite+aiosqlite:////var/lib/inbox/inbox.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgres://u:p@db.example:5432/inbox", "postgresql+asyncpg://u:p@db.example:5432/inbox"),
        ("postgresql://u:p@db.example/inbox", "postgresql+asyncpg://u:p@db.example/inbox"),
        ("postgresql+asyncpg://u@h/inbox", "postgresql+asyncpg://u@h/inbox"),
        ("postgres://u:p@h/inbox?sslmode=require", "postgresql+asyncpg://u:p@h/inbox?ssl=require"),
        (
            "postgresql://h/inbox?sslmode=verify-full&application_name=inbox",
            "postgresql+asyncpg://h/inbox?ssl=verify-full&application_name=inbox",
        ),
    ],
)
def test_database_urls_map_to_async_drivers(given: str, expected: str) -> None:
    assert async_database_url(given) == expected


@pytest.mark.parametrize("url", ["mysql://x", "redis://h/0", "inbox.db", ""])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///, postgresql:// or postgres://"):
        async_database_url(url)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    settings = load_settings()
    assert settings.env == "production"
    assert settings.database_url == "sqlite+aiosqlite:///inbox.db"
    assert settings.is_sqlite
    assert settings.redis_url is None
    assert settings.port == 8000
    assert settings.allowed_origins == []
    assert settings.signing_key == KEY


def test_paas_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db.internal:5432/app?sslmode=require")
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@cache.internal:6380/0")
    monkeypatch.setenv("PORT", "5123")
    settings = load_settings()
    assert settings.database_url == "postgresql+asyncpg://app:pw@db.internal:5432/app?ssl=require"
    assert not settings.is_sqlite
    assert settings.redis_url == "rediss://:pw@cache.internal:6380/0"
    assert settings.port == 5123


def test_inbox_variables_win_over_the_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    monkeypatch.setenv("DATABASE_URL", "postgres://paas/db")
    monkeypatch.setenv("INBOX_DATABASE_URL", "sqlite:///mine.db")
    monkeypatch.setenv("REDIS_URL", "redis://paas:6379/0")
    monkeypatch.setenv("INBOX_REDIS_URL", "redis://mine:6379/1")
    monkeypatch.setenv("PORT", "abc")  # ignored: INBOX_PORT is set
    monkeypatch.setenv("INBOX_PORT", "9000")
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///mine.db"
    assert settings.redis_url == "redis://mine:6379/1"
    assert settings.port == 9000


def test_allowed_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    monkeypatch.setenv(
        "INBOX_ALLOWED_ORIGINS", "https://app.example.com, https://admin.example.com/ ,,"
    )
    assert load_settings().allowed_origins == [
        "https://app.example.com",
        "https://admin.example.com",
    ]


def test_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    monkeypatch.setenv("INBOX_PUBLIC_URL", "https://inbox.example.com/")
    monkeypatch.setenv("INBOX_ACCESS_TOKEN_TTL", "900")
    monkeypatch.setenv("INBOX_REDIS_URL", "")
    settings = load_settings()
    assert settings.public_url == "https://inbox.example.com"
    assert settings.access_token_ttl == 900
    assert settings.redis_url is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"INBOX_PORT": "abc"}, "INBOX_PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"INBOX_DATABASE_URL": "mysql://x"}, "INBOX_DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://cache"}, "REDIS_URL"),
        ({"INBOX_PUBLIC_URL": "inbox.example.com"}, "INBOX_PUBLIC_URL"),
        ({"INBOX_ENV": "staging"}, "INBOX_ENV"),
        ({"INBOX_ACCESS_TOKEN_TTL": "5"}, "INBOX_ACCESS_TOKEN_TTL"),
        ({"INBOX_SECRET_KEY": "short"}, "INBOX_SECRET_KEY"),
        ({"INBOX_SECRETS_KEY": "a-passphrase-is-not-a-key"}, "INBOX_SECRETS_KEY"),
        ({"INBOX_SECRETS_KEY": f"{SECRETS_KEY},{OLD_SECRETS_KEY[:-2]}"}, "INBOX_SECRETS_KEY"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


def test_production_needs_a_secret_key() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "INBOX_SECRET_KEY" in str(raised.value)
    assert "INBOX_ENV=development" in str(raised.value)


@pytest.mark.parametrize("value", [None, "", " , "])
def test_production_needs_a_secrets_key(monkeypatch: pytest.MonkeyPatch, value) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    if value is not None:
        monkeypatch.setenv("INBOX_SECRETS_KEY", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("INBOX_SECRETS_KEY is required")
    assert "inbox secrets new-key" in message
    assert "\n" not in message


def test_a_bad_secrets_key_is_named_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    bad = SECRETS_KEY[:-4]
    monkeypatch.setenv("INBOX_SECRETS_KEY", f"{bad},{OLD_SECRETS_KEY}")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("INBOX_SECRETS_KEY: each key must be 32 url-safe base64")
    assert bad not in message and OLD_SECRETS_KEY not in message


def test_secrets_keys_are_newest_first_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", f" {SECRETS_KEY} , {OLD_SECRETS_KEY} ")
    settings = load_settings()
    assert settings.channel_secrets_keys == [SECRETS_KEY.encode(), OLD_SECRETS_KEY.encode()]
    assert SECRETS_KEY not in repr(settings) and SECRETS_KEY not in str(settings.model_dump())


def test_outside_production_the_secrets_key_is_derived_from_the_signing_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("INBOX_ENV", "development")
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    [derived] = load_settings().channel_secrets_keys
    Fernet(derived)  # a valid key
    assert load_settings().channel_secrets_keys == [derived]  # the same at every start
    assert derived.decode() not in (KEY, SECRETS_KEY)
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY + "-other")
    assert load_settings().channel_secrets_keys != [derived]
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    assert load_settings().channel_secrets_keys == [SECRETS_KEY.encode()]
    assert list(tmp_path.iterdir()) == []


def test_development_generates_a_key_once_keeps_it_and_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("INBOX_ENV", "development")
    with caplog.at_level(logging.WARNING, logger="inbox.settings"):
        key = with_development_key(load_settings()).signing_key
    assert len(key) >= 32
    path = tmp_path / ".inbox-secret-key"
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any("INBOX_SECRET_KEY" in r.getMessage() for r in caplog.records)
    # A restart reuses it, so tokens issued before still verify.
    assert with_development_key(load_settings()).signing_key == key


def test_loading_the_settings_makes_no_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every command loads them; only what signs makes the development key."""
    monkeypatch.setenv("INBOX_ENV", "development")
    with caplog.at_level(logging.WARNING, logger="inbox.settings"):
        assert load_settings().secret_key is None
    assert list(tmp_path.iterdir()) == []
    assert caplog.records == []


async def test_an_app_of_development_settings_without_a_key_starts_and_signs_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import asyncio

    import httpx

    from inbox import migrate
    from inbox.app import create_app
    from inbox.security import decode_token, issue_token

    url = async_database_url(f"sqlite:///{tmp_path / 'inbox.db'}")
    # Migrating runs a loop of its own.
    await asyncio.to_thread(migrate.upgrade, url)
    app = create_app(Settings(env="development", database_url=url, redis_url=None))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/healthz")).status_code == 200
        token = issue_token(
            user_id=1,
            organization_id=2,
            role="agent",
            key=app.state.inbox.settings.signing_key,
            ttl_seconds=60,
        )
    # Signed with the development key kept on disk, so a restart still accepts it.
    kept = (tmp_path / DEV_SECRET_FILE).read_text().strip()
    assert decode_token(token, kept).organization_id == 2


def test_reading_the_key_writes_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Only loading the settings makes the development key; a property read does not."""
    settings = Settings(env="development")
    with pytest.raises(ConfigError, match="INBOX_SECRET_KEY"):
        settings.signing_key  # noqa: B018 - the read is the test
    assert list(tmp_path.iterdir()) == []
    assert (
        with_development_key(settings).signing_key
        == (tmp_path / DEV_SECRET_FILE).read_text().strip()
    )


def test_a_configured_key_wins_in_development_and_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("INBOX_ENV", "development")
    monkeypatch.setenv("INBOX_SECRET_KEY", KEY)
    monkeypatch.setenv("INBOX_SECRETS_KEY", SECRETS_KEY)
    assert Settings().signing_key == KEY
    assert not (tmp_path / ".inbox-secret-key").exists()


def test_the_example_environment_file_is_valid_and_names_every_setting() -> None:
    """`.env.example` is what a newcomer copies: every line a setting that loads."""
    from pathlib import Path

    from inbox.settings import Settings

    path = Path(__file__).resolve().parents[2] / ".env.example"
    named: set[str] = set()
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        text = line.removeprefix("# ").strip()
        if "=" in text and text.split("=", 1)[0].isupper() and " " not in text.split("=", 1)[0]:
            name, value = text.split("=", 1)
            named.add(name)
            if not line.startswith("#"):
                values[name] = value
    settings = Settings(**{k.removeprefix("INBOX_").lower(): v for k, v in values.items()})
    assert settings.env == "development"
    fields = {f"INBOX_{name.upper()}" for name in Settings.model_fields}
    assert fields <= named, f"not in .env.example: {sorted(fields - named)}"
