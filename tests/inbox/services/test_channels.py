"""Connecting a channel: one function for the API, the CLI, the demo and the generic
webhook; its settings sealed, its routing key unique across the service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from connectors.settings import SmsSettings
from inbox.db import Database
from inbox.errors import Conflict, NotFound, ValidationFailed
from inbox.services import accounts
from inbox.services.channel_cache import ChannelCache
from inbox.services.channel_secrets import ChannelSecrets
from inbox.services.channels import (
    active_settings,
    create_channel,
    generic_channel,
    parse_settings,
)
from tests.inbox.platforms import unique_digits

SECRETS = ChannelSecrets([Fernet.generate_key()])


@pytest.fixture()
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


def sms(number: str) -> SmsSettings:
    return SmsSettings(
        phone_number=number, account_sid="AC" + "a1" * 16, auth_token=SecretStr("token-secret")
    )


async def test_a_channel_is_stored_with_its_routing_key_and_its_secrets_sealed(
    db: Database,
) -> None:
    org = await accounts.create_organization(db, "Channels")
    assert org.id is not None
    number = f"+1555{unique_digits(7)}"
    channel = await create_channel(
        db, SECRETS, org.id, kind="sms", name="Desk", settings=sms(number)
    )
    assert channel.id is not None and channel.is_active
    assert channel.routing_key == number
    assert "token-secret" not in str(channel.settings)
    assert SECRETS.decrypted(channel)["auth_token"] == "token-secret"
    opened = await active_settings(db, "sms", SECRETS.open)
    assert any(getattr(s, "phone_number", None) == number for s in opened)


async def test_a_routing_key_routes_one_channel_in_the_whole_service(db: Database) -> None:
    first = await accounts.create_organization(db, "First")
    second = await accounts.create_organization(db, "Second")
    assert first.id is not None and second.id is not None
    number = f"+1555{unique_digits(7)}"
    await create_channel(db, SECRETS, first.id, kind="sms", name="A", settings=sms(number))
    with pytest.raises(Conflict) as refused:
        await create_channel(db, SECRETS, second.id, kind="sms", name="B", settings=sms(number))
    assert refused.value.message == "settings.phone_number: is already connected to a sms channel"


async def test_an_unknown_organization_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound, match="Organization 2147483000 not found"):
        await create_channel(
            db,
            SECRETS,
            2147483000,
            kind="generic",
            name="X",
            settings=parse_settings("generic", {}),
        )


def test_settings_are_refused_field_by_field_under_settings() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_settings("sms", {"phone_number": "+15550002222", "account_sid": "nope"})
    fields = [f["field"] for f in refused.value.details["fields"]]
    assert "settings.account_sid" in fields and "settings.auth_token" in fields


async def test_the_first_normalized_message_makes_the_generic_channel_once(db: Database) -> None:
    org = await accounts.create_organization(db, "Generic")
    assert org.id is not None
    cache = ChannelCache(db, SECRETS)
    made = await generic_channel(db, cache, org.id)
    assert (made.kind, made.name, made.settings) == ("generic", "API", {})
    assert (await generic_channel(db, cache, org.id)).id == made.id
