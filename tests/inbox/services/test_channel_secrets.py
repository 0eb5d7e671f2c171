"""Channel secrets at rest: encrypted under INBOX_SECRETS_KEY, never in the database in
clear, read decrypted by webhooks and replies, rotated by `inbox secrets rotate`."""

from __future__ import annotations

import base64
import json
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr
from servers import free_port
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import col
from support import BackgroundLoop, LiveServer

from connectors.settings import SETTINGS_BY_KIND, ChannelSettings
from inbox.app import create_app
from inbox.db import Database
from inbox.models import Channel, Conversation, Message
from inbox.services.channel_secrets import PREFIX, ChannelSecrets, public_view
from tests.connectors.fake_platform import FakePlatform
from tests.connectors.helpers import TWILIO_ACCOUNT_SID
from tests.inbox.conftest import Service, make_settings
from tests.inbox.platforms import (
    Connected,
    instagram_body,
    instagram_channel,
    post_meta,
    post_twilio,
    rows,
    sms_body,
    sms_channel,
    unique_digits,
    wait_for,
    whatsapp_body,
    whatsapp_channel,
)
from tests.inbox.test_cli import Cli, clean_env

KEY_1 = Fernet.generate_key().decode()
KEY_2 = Fernet.generate_key().decode()
WRONG_KEY = Fernet.generate_key().decode()

# Valid values of every field that is not a secret, per kind.
PLAIN_FIELDS: dict[str, dict[str, Any]] = {
    "whatsapp": {"phone_number_id": "106540352242922", "business_account_id": "102290129340398"},
    "instagram": {"account_id": "17841405822304914"},
    "sms": {"phone_number": "+15017122661", "account_sid": TWILIO_ACCOUNT_SID},
    "generic": {},
}


# -- helpers -----------------------------------------------------------------------------


def raw_settings(service: Any, channel_id: int) -> str:
    """The row's settings as the database holds them, read past the ORM."""

    async def load() -> str:
        async with service.db.engine.connect() as conn:
            result = await conn.execute(
                text("SELECT CAST(settings AS TEXT) FROM channels WHERE id = :id"),
                {"id": channel_id},
            )
            return str(result.scalar_one())

    return str(service.run(load()))


def sqlite_bytes(service: Any) -> bytes:
    """Every byte of an SQLite database: the file and its write-ahead log."""
    path = Path(make_url(service.settings.database_url).database or "")
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def secrets_of(channel: Connected) -> list[str]:
    values: list[str] = []
    for name in SETTINGS_BY_KIND[channel.kind].secret_fields:
        value = channel.settings.get(name)
        values.extend(value if isinstance(value, list) else [value] if value else [])
    return values


def assert_not_in_clear(service: Any, channel: Connected) -> None:
    raw = raw_settings(service, channel.id)
    assert PREFIX in raw
    dump = sqlite_bytes(service) if service.dialect == "sqlite" else b""
    for secret in secrets_of(channel):
        assert secret not in raw
        assert secret.encode() not in dump


def deliver(service: Any, channel: Connected, secret: str) -> Any:
    """A customer's first message on the channel, signed with ``secret``."""
    if channel.kind == "whatsapp":
        return post_meta(service, "whatsapp", whatsapp_body(channel, "text.json"), secret)
    if channel.kind == "instagram":
        return post_meta(service, "instagram", instagram_body(channel, "text.json"), secret)
    return post_twilio(service, "/webhooks/twilio/sms", sms_body(channel, "sms.txt"), secret)


def send_reply(service: Any, tenant: Any, platform: FakePlatform, channel: Connected) -> Any:
    """Reply in the channel's conversation; the request the platform received."""
    [conv] = rows(service, Conversation, col(Conversation.channel_id) == channel.id)
    r = tenant.api.post(f"/api/conversations/{conv.id}/messages", json={"content": "Hi!"})
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]
    sent = wait_for(
        lambda: m if (m := rows(service, Message, col(Message.id) == message_id)[0]).status
        in ("sent", "failed") else None,
        what="the reply to be sent",
    )
    assert sent.status == "sent", sent.error
    path = "/Messages.json" if channel.kind == "sms" else f"/{channel.key}/messages"
    return [r for r in platform.requests if r.path.endswith(path)
            and (channel.kind != "sms" or r.form().get("From") == [channel.key])][-1]


def authorization(channel: Connected, token: str) -> str:
    if channel.kind == "sms":
        import base64

        pair = f"{channel.settings['account_sid']}:{token}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"
    return f"Bearer {token}"


def current_token(channel: Connected) -> str:
    return str(channel.settings.get("access_token") or channel.settings["auth_token"])


@contextmanager
def running(
    database_url: str, loop: BackgroundLoop, platform: FakePlatform, secrets_key: str
) -> Iterator[Service]:
    """The service on ``database_url`` with its own INBOX_SECRETS_KEY."""
    settings = make_settings(
        database_url,
        secrets_key=secrets_key,
        graph_api_url=platform.base_url,
        twilio_api_url=platform.base_url,
    )
    app = create_app(settings)
    server = LiveServer(app, loop)
    server.start()
    db = Database(database_url)
    service = Service(server.url, server.ws_url, settings, db, loop, db.dialect, app=app)
    try:
        yield service
    finally:
        for client in service.clients:
            client.close()
        loop.run(db.dispose())
        server.stop()


def cli(tmp_path: Path, database_url: str, secrets_key: str) -> Cli:
    return Cli(tmp_path, clean_env(database_url, INBOX_SECRETS_KEY=secrets_key))


def stored_tokens(service: Any, channel_id: int) -> list[str]:
    raw = json.loads(raw_settings(service, channel_id))
    values = [v for value in raw.values() for v in (value if isinstance(value, list) else [value])]
    return [v.removeprefix(PREFIX) for v in values if isinstance(v, str) and v.startswith(PREFIX)]


# -- every secret field, sealed ----------------------------------------------------------


def _is_secret_type(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


@pytest.mark.parametrize("kind", list(SETTINGS_BY_KIND))
def test_every_secret_typed_field_is_a_secret_field(kind: str) -> None:
    """A secret added to a kind's settings is encrypted without anyone listing it here."""
    model = SETTINGS_BY_KIND[kind]
    typed = {n for n, f in model.model_fields.items() if _is_secret_type(f.annotation)}
    assert typed <= model.secret_fields


def secret_value(model: Any, name: str) -> str | list[str]:
    """A value of the field's own shape: a list of old secrets, or one secret."""
    if typing.get_origin(model.model_fields[name].annotation) is list:
        return [f"{name}-old-1", f"{name}-old-2"]
    if name == "callback_secret":  # a Standard Webhooks secret: whsec_ and base64
        return "whsec_" + base64.b64encode(f"{name}-value-of-32-bytes".encode()).decode()
    return f"{name}-value"


@pytest.mark.parametrize("kind", list(SETTINGS_BY_KIND))
def test_every_secret_is_sealed_and_opens_to_what_was_set(kind: str) -> None:
    model = SETTINGS_BY_KIND[kind]
    values: dict[str, Any] = dict(PLAIN_FIELDS[kind])
    for name in model.secret_fields:
        values[name] = secret_value(model, name)
    settings = model.model_validate(values)
    box = ChannelSecrets([KEY_1.encode()])

    sealed = box.seal(settings)

    dumped = json.dumps(sealed)
    for name in model.secret_fields:
        assert f"{name}-" not in dumped
        for item in sealed[name] if isinstance(sealed[name], list) else [sealed[name]]:
            assert item.startswith(PREFIX)
            with pytest.raises(InvalidToken):
                Fernet(KEY_2.encode()).decrypt(item.removeprefix(PREFIX))
    assert {k: v for k, v in sealed.items() if k not in model.secret_fields} == settings.public()
    channel = Channel(id=1, organization_id=1, kind=kind, name="x", settings=sealed)
    assert box.open(channel).stored() == settings.stored()
    # What the API shows needs no key, and is what it was before encryption.
    shown: ChannelSettings = public_view(channel)
    assert shown.public() == settings.public()
    assert shown.configured_secrets() == settings.configured_secrets()


# -- through the API, on both databases ---------------------------------------------------


@pytest.mark.parametrize("kind", ["whatsapp", "instagram", "sms"])
def test_a_secret_set_through_the_api_is_never_stored_in_clear_yet_verifies_and_sends(
    service, tenant, platform, kind
):
    platform.reset()
    n = unique_digits(6)
    previous = f"previous-{kind}-{n}"
    if kind == "whatsapp":
        channel = whatsapp_channel(tenant, previous_app_secrets=[previous])
    elif kind == "instagram":
        channel = instagram_channel(tenant, previous_app_secrets=[previous])
    else:
        channel = sms_channel(tenant, previous_auth_tokens=[previous])
    assert_not_in_clear(service, channel)

    # Signatures are checked with the decrypted secrets, the current one and the previous.
    assert deliver(service, channel, channel.secret).status_code == 200
    assert deliver(service, channel, previous).status_code == 200  # a retry: a no-op
    assert deliver(service, channel, "not-the-secret").status_code == 401
    request = send_reply(service, tenant, platform, channel)
    assert request.headers["authorization"] == authorization(channel, current_token(channel))

    # A secret changed through the API is encrypted too, and used at once.
    token_field = "auth_token" if kind == "sms" else "access_token"
    new_token = f"rotated-{kind}-{n}"
    r = tenant.api.patch(f"/api/channels/{channel.id}", json={"settings": {token_field: new_token}})
    assert r.status_code == 200, r.text
    assert new_token not in r.text
    channel.settings[token_field] = new_token
    assert_not_in_clear(service, channel)
    request = send_reply(service, tenant, platform, channel)
    assert request.headers["authorization"] == authorization(channel, new_token)


def test_a_channel_stored_before_encryption_keeps_working(service, tenant, platform):
    """Rows written in clear by an earlier version are read as they are."""
    platform.reset()
    key = f"106{unique_digits(9)}"
    settings = {"phone_number_id": key, "access_token": f"legacy-token-{key}",
                "app_secret": f"legacy-secret-{key}", "verify_token": f"legacy-verify-{key}",
                "previous_app_secrets": []}

    async def insert() -> int:
        async with service.db.session() as session:
            row = Channel(organization_id=tenant.org_id, kind="whatsapp", name="Legacy",
                          routing_key=key, settings=settings)
            session.add(row)
            await session.commit()
            assert row.id is not None
            return row.id

    channel = Connected(service.run(insert()), "whatsapp", key, settings)
    assert deliver(service, channel, channel.secret).status_code == 200
    request = send_reply(service, tenant, platform, channel)
    assert request.headers["authorization"] == f"Bearer legacy-token-{key}"
    shown = tenant.api.get(f"/api/channels/{channel.id}").json()
    assert shown["configured_secrets"] == ["access_token", "app_secret", "verify_token"]
    assert f"legacy-secret-{key}" not in json.dumps(shown)


# -- rotation, on both databases ------------------------------------------------------------


def test_rotation_re_encrypts_every_secret_under_the_newest_key_once(
    own_database, loop, platform, tmp_path
):
    platform.reset()
    with running(own_database, loop, platform, KEY_1) as first:
        tenant = first.new_tenant()
        whatsapp = whatsapp_channel(tenant, previous_app_secrets=["wa-previous"])
        sms = sms_channel(tenant)
        # One channel as an earlier version stored it: in clear.
        key = f"106{unique_digits(9)}"
        legacy_settings = {"phone_number_id": key, "access_token": "legacy-token",
                           "app_secret": "legacy-secret", "verify_token": "legacy-verify"}

        async def insert() -> int:
            async with first.db.session() as session:
                row = Channel(organization_id=tenant.org_id, kind="whatsapp", name="Legacy",
                              routing_key=key, settings=legacy_settings)
                session.add(row)
                await session.commit()
                assert row.id is not None
                return row.id

        legacy = Connected(first.run(insert()), "whatsapp", key, legacy_settings)
        channels = [whatsapp, sms, legacy]
        for channel in channels:
            assert deliver(first, channel, channel.secret).status_code == 200
        before = {c.id: raw_settings(first, c.id) for c in channels}

    rotate = cli(tmp_path, own_database, f"{KEY_2},{KEY_1}")
    done = rotate.json("secrets", "rotate")
    # WhatsApp: access token, app secret, verify token, one previous secret; SMS: auth token;
    # the legacy channel's three, which were in clear.
    assert done == {"rewritten": 8, "channels": 3, "encrypted": 3, "reencrypted": 5,
                    "current": 0, "failed_channels": []}
    again = rotate.run("secrets", "rotate")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        "rewrote 0 secrets of 0 channels under the newest key (0 were plaintext, "
        "0 under an older key); 8 already were"
    )

    with running(own_database, loop, platform, KEY_2) as second:
        # Under the new key alone: the old one can be dropped from the setting.
        for channel in channels:
            raw = raw_settings(second, channel.id)
            assert raw != before[channel.id]
            tokens = stored_tokens(second, channel.id)
            assert len(tokens) == (4 if channel is whatsapp else 1 if channel is sms else 3)
            for token in tokens:
                Fernet(KEY_2.encode()).decrypt(token)
                with pytest.raises(InvalidToken):
                    Fernet(KEY_1.encode()).decrypt(token)
            assert_not_in_clear(second, channel)
        tenant.service = second
        tenant.api = second.client(second.token_for(tenant.owner))
        for channel in channels:
            assert deliver(second, channel, channel.secret).status_code == 200  # retried: no-op
            request = send_reply(second, tenant, platform, channel)
            assert request.headers["authorization"] == authorization(
                channel, current_token(channel)
            )


# -- a wrong or missing key -------------------------------------------------------------------


def test_a_wrong_key_is_a_clear_error_naming_the_setting_and_loses_nothing(
    own_database, loop, platform, tmp_path
):
    platform.reset()
    with running(own_database, loop, platform, KEY_1) as first:
        tenant = first.new_tenant()
        channel = whatsapp_channel(tenant)
        before = raw_settings(first, channel.id)

    wrong = cli(tmp_path, own_database, WRONG_KEY)
    rotated = wrong.run("secrets", "rotate")
    assert rotated.returncode == 1
    assert rotated.stderr.strip().splitlines()[-1] == (
        f"error: channels {channel.id}: their secrets decrypt with no key in INBOX_SECRETS_KEY; "
        "list the key they were encrypted with after the newest one and run this again"
    )
    assert "Traceback" not in rotated.stderr

    # The server refuses to start rather than answer every delivery with an error.
    served = wrong.run("serve", "--port", str(free_port()))
    assert served.returncode == 1
    assert served.stderr.strip().splitlines()[-1] == (
        f"error: The access_token of channel {channel.id} does not decrypt with any key in "
        "INBOX_SECRETS_KEY: list the key it was encrypted with (after the newest one) until "
        "`inbox secrets rotate` has run"
    )

    with running(own_database, loop, platform, WRONG_KEY) as misconfigured:
        api = misconfigured.client(misconfigured.token_for(tenant.owner))
        r = deliver(misconfigured, channel, channel.secret)
        # 503: the platform retries; nothing is stored or acknowledged meanwhile.
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert "INBOX_SECRETS_KEY" in error["message"]
        assert channel.secret not in r.text
        assert rows(misconfigured, Message, col(Message.channel_id) == channel.id) == []
        # Showing the channel needs no key; changing its settings does.
        assert api.get(f"/api/channels/{channel.id}").status_code == 200
        r = api.patch(f"/api/channels/{channel.id}", json={"settings": {"access_token": "x"}})
        assert r.status_code == 503
        assert "INBOX_SECRETS_KEY" in r.json()["error"]["message"]
        assert raw_settings(misconfigured, channel.id) == before

    with running(own_database, loop, platform, f"{WRONG_KEY},{KEY_1}") as fixed:
        # The retry is stored once the key is listed again.
        assert deliver(fixed, channel, channel.secret).status_code == 200
        assert len(rows(fixed, Message, col(Message.channel_id) == channel.id)) == 1
