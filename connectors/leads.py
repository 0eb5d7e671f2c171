"""Lead forms: what a landing page posts to ``/webhooks/leads/incoming``,
as JSON or as a plain HTML form (``application/x-www-form-urlencoded``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError

from .errors import PayloadError
from .payload import load_form, load_json, validation_error
from .phones import to_e164
from .types import LeadSubmission, WebhookRequest

# Other names forms commonly use for the fields we know.
_ALIASES = {
    "full_name": "name",
    "phone_number": "phone",
    "tel": "phone",
    "organization": "company",
    "company_name": "company",
    "notes": "message",
    "comments": "message",
}
_KNOWN = frozenset({"name", "first_name", "last_name", "email", "phone", "company", "message"})
_MAX_EXTRA_FIELDS = 50
_MAX_FIELD_NAME = 64
_MAX_EXTRA_VALUE = 2000


class _LeadForm(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: EmailStr | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    company: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=10_000)


def parse_lead(req: WebhookRequest, default_region: str | None = None) -> LeadSubmission:
    """The lead in ``req``; PayloadError (with per-field ``details``) when it is
    not one. ``default_region`` reads phone numbers typed without a country code."""
    fields = _fields(req)
    known: dict[str, str] = {}
    extra: dict[str, str] = {}
    for raw_name, value in fields.items():
        name = _ALIASES.get(raw_name.lower(), raw_name.lower())
        if name in _KNOWN:
            # An empty form input means "not given".
            if value.strip() and name not in known:
                known[name] = value
        else:
            extra[raw_name] = value
    _check_extra(extra)
    try:
        form = _LeadForm.model_validate(known)
    except ValidationError as exc:
        raise validation_error(exc) from None

    name = form.name or " ".join(part for part in (form.first_name, form.last_name) if part)
    if not (name or form.email or form.phone):
        raise PayloadError(
            "a lead needs at least a name, an email or a phone",
            details={"name": "one of name, email or phone is required"},
        )
    phone = to_e164(form.phone, default_region) if form.phone else None
    if form.phone and phone is None:
        extra["phone"] = form.phone
    return LeadSubmission(
        name=name or None,
        email=str(form.email).lower() if form.email else None,
        phone=phone,
        company=form.company or None,
        message=form.message or None,
        extra=extra,
    )


def _fields(req: WebhookRequest) -> dict[str, str]:
    if req.content_type == "application/json":
        data = load_json(req.body)
        if not isinstance(data, dict):
            raise PayloadError("expected a JSON object", "body")
        fields: dict[str, str] = {}
        for name, value in data.items():
            fields[name] = _scalar(name, value)
        return fields
    if req.content_type == "application/x-www-form-urlencoded":
        form: dict[str, str] = {}
        for name, value in load_form(req.body):
            form.setdefault(name, value)
        return form
    raise PayloadError(
        "send the lead as application/json or application/x-www-form-urlencoded",
        "content-type",
    )


def _scalar(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise PayloadError("expected a string, number or boolean", name, {name: "must be a scalar"})


def _check_extra(extra: dict[str, str]) -> None:
    if len(extra) > _MAX_EXTRA_FIELDS:
        raise PayloadError(f"at most {_MAX_EXTRA_FIELDS} extra fields are accepted", "body")
    for name, value in extra.items():
        if not name or len(name) > _MAX_FIELD_NAME:
            raise PayloadError(f"field names are 1 to {_MAX_FIELD_NAME} characters", name[:64])
        if len(value) > _MAX_EXTRA_VALUE:
            raise PayloadError(
                f"at most {_MAX_EXTRA_VALUE} characters", name, {name: "value too long"}
            )
