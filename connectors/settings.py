"""Per-kind channel settings: what an operator configures for each platform.

Each kind names the field that routes webhooks to the channel (its routing key)
and the fields that are secrets (write-only: accepted, stored, never shown).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .safe_urls import UnsafeUrl, check_url
from .standard_webhooks import InvalidSecret, secret_bytes


class ChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    routing_field: ClassVar[str | None] = None
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # Left out of what is stored and shown while they hold their default: a channel
    # that never turned them on reads exactly as it did before they existed.
    quiet_fields: ClassVar[frozenset[str]] = frozenset({"sandbox"})

    def routing_key(self) -> str | None:
        if self.routing_field is None:
            return None
        value = getattr(self, self.routing_field)
        return str(value) if value is not None else None

    def stored(self) -> dict[str, Any]:
        """Every value, secrets revealed: what goes into the database."""
        out: dict[str, Any] = {}
        for name, value in self:
            if name in self.quiet_fields and value == type(self).model_fields[name].default:
                continue
            if isinstance(value, SecretStr):
                out[name] = value.get_secret_value()
            elif isinstance(value, list):
                out[name] = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
            else:
                out[name] = value
        return out

    def public(self) -> dict[str, Any]:
        """The non-secret values: what the API may show."""
        return {
            name: value for name, value in self.stored().items() if name not in self.secret_fields
        }

    def configured_secrets(self) -> list[str]:
        return sorted(name for name in self.secret_fields if getattr(self, name))


def _sandbox() -> Any:
    # A sandbox channel never reaches the platform: its sends are accepted by a stand-in
    # (connectors.sandbox) that then reports their delivery, so a demo or a first try
    # shows the whole loop of a reply without an account at Meta or Twilio.
    return Field(
        default=False,
        description="Send through the built-in sandbox instead of the platform (no network).",
    )


class WhatsAppSettings(ChannelSettings):
    routing_field: ClassVar[str | None] = "phone_number_id"
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"access_token", "app_secret", "previous_app_secrets", "verify_token"}
    )

    phone_number_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")
    access_token: SecretStr = Field(min_length=1)
    app_secret: SecretStr = Field(min_length=1)
    verify_token: SecretStr = Field(min_length=1)
    # Secrets still accepted while a rotation is rolled out.
    previous_app_secrets: list[SecretStr] = Field(default_factory=list, max_length=5)
    sandbox: bool = _sandbox()
    # Some deliveries (account_update, ...) name only the WhatsApp Business Account,
    # not the phone number: this routes them to the channel.
    business_account_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^\d+$",
        description="WhatsApp Business Account id (entry[].id of the webhooks).",
    )
    quiet_fields: ClassVar[frozenset[str]] = ChannelSettings.quiet_fields | {"business_account_id"}


class InstagramSettings(ChannelSettings):
    routing_field: ClassVar[str | None] = "account_id"
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"access_token", "app_secret", "previous_app_secrets", "verify_token"}
    )

    account_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")
    access_token: SecretStr = Field(min_length=1)
    app_secret: SecretStr = Field(min_length=1)
    verify_token: SecretStr = Field(min_length=1)
    previous_app_secrets: list[SecretStr] = Field(default_factory=list, max_length=5)
    sandbox: bool = _sandbox()


class SmsSettings(ChannelSettings):
    routing_field: ClassVar[str | None] = "phone_number"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"auth_token", "previous_auth_tokens"})

    phone_number: str = Field(min_length=2, max_length=32)
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr = Field(min_length=1)
    previous_auth_tokens: list[SecretStr] = Field(default_factory=list, max_length=5)
    sandbox: bool = _sandbox()

    @field_validator("phone_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        digits = value.replace(" ", "").replace("-", "")
        if not digits.startswith("+") or not digits[1:].isdigit() or len(digits) < 8:
            raise ValueError("must be an E.164 number such as +15550123456")
        return digits


class GenericSettings(ChannelSettings):
    """A source that posts normalized JSON with an organization API key, and may take
    the replies to its conversations at ``callback_url`` (Standard Webhooks signed with
    ``callback_secret``); without one, its conversations cannot be replied to."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"callback_secret"})
    quiet_fields: ClassVar[frozenset[str]] = ChannelSettings.quiet_fields | {
        "callback_url",
        "callback_secret",
    }

    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where agents' replies are POSTed, signed (Standard Webhooks).",
    )
    callback_secret: SecretStr | None = Field(
        default=None, description="The signing secret of the callbacks: whsec_ and base64."
    )

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return check_url(value)
        except UnsafeUrl as exc:
            raise ValueError(str(exc)) from None

    @field_validator("callback_secret")
    @classmethod
    def _callback_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if value.get_secret_value() == "*":
            return value  # what the API shows in place of a secret that is set
        try:
            secret_bytes(value.get_secret_value())
        except InvalidSecret as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _secret_with_url(self) -> GenericSettings:
        if self.callback_url and self.callback_secret is None:
            raise ValueError("a callback_url needs a callback_secret (whsec_ and base64)")
        return self


SETTINGS_BY_KIND: dict[str, type[ChannelSettings]] = {
    "whatsapp": WhatsAppSettings,
    "instagram": InstagramSettings,
    "sms": SmsSettings,
    "generic": GenericSettings,
}

KINDS: tuple[str, ...] = tuple(SETTINGS_BY_KIND)


S = TypeVar("S", bound=ChannelSettings)


def expect(model: type[S], settings: ChannelSettings) -> S:
    """``settings`` as the model its adapter takes; TypeError for another kind's."""
    if not isinstance(settings, model):
        raise TypeError(f"expected {model.__name__}, got {type(settings).__name__}")
    return settings


def settings_model(kind: str) -> type[ChannelSettings]:
    """The settings model of a channel kind; KeyError for an unknown kind."""
    return SETTINGS_BY_KIND[kind]
