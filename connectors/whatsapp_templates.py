"""WhatsApp message templates: reading a Business Account's list, what each needs
filled in, and a filled one in the Graph API's send format.

The list is ``GET {graph}/{business_account_id}/message_templates``, paged with
``paging.next`` (a whole URL to follow). A template's text holds placeholders,
positional (``{{1}}``) or named (``{{first_name}}``, ``parameter_format: NAMED``);
a text header may hold one, a media header (image, video, document) takes a link,
and a URL button whose address ends in ``{{1}}`` takes the rest of that address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from . import meta, sending
from .errors import PlatformCallError
from .settings import ChannelSettings, WhatsAppSettings, expect

__all__ = [
    "FilledTemplate",
    "Template",
    "TemplateError",
    "TemplateListError",
    "fetch_templates",
    "fill",
    "read_template",
    "requirements",
]

# Pages followed at most: a Business Account holds at most a few thousand templates.
MAX_PAGES = 100
PAGE_SIZE = 100
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_MEDIA_HEADERS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document"}


class TemplateListError(PlatformCallError):
    """The Business Account's templates could not be read."""


class TemplateError(ValueError):
    """A template cannot be filled as asked: ``field`` names the part, the message why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Template:
    """One template as the platform lists it."""

    external_id: str | None
    name: str
    language: str
    status: str
    category: str | None
    components: list[dict[str, Any]]


@dataclass(frozen=True)
class FilledTemplate:
    """A template with its parameters: ``payload`` is the send body's ``template``
    object, ``text`` how it reads to the customer."""

    payload: dict[str, Any]
    text: str


async def fetch_templates(
    client: httpx.AsyncClient, base_url: str, settings: ChannelSettings
) -> list[Template]:
    """Every template of the channel's Business Account, every page followed.
    Raises TemplateListError; a channel without ``business_account_id`` cannot list."""
    s = expect(WhatsAppSettings, settings)
    if not s.business_account_id:
        raise TemplateListError(
            "the channel has no business_account_id to list templates of",
            retryable=False,
            code="no_business_account",
        )
    url: str | None = f"{base_url.rstrip('/')}/{quote(s.business_account_id, safe='')}"
    url = f"{url}/message_templates"
    params: dict[str, Any] | None = {"limit": PAGE_SIZE}
    headers = {"Authorization": f"Bearer {s.access_token.get_secret_value()}"}
    templates: list[Template] = []
    pages = 0
    while url is not None:
        pages += 1
        if pages > MAX_PAGES:
            raise TemplateListError(
                f"more than {MAX_PAGES} pages of templates", retryable=False, code="too_many_pages"
            )
        with sending.transport_errors(url, TemplateListError):
            response = await client.get(url, params=params, headers=headers)
        if not response.is_success:
            raise sending.refusal(
                TemplateListError, url, response, meta.read_graph_error, _retryable
            )
        body = sending.json_body(response)
        data = body.get("data")
        if not isinstance(data, list):
            raise TemplateListError(
                "the template list has no data array", retryable=False, code="bad_response"
            )
        templates.extend(t for t in map(read_template, data) if t is not None)
        paging = body.get("paging")
        following = paging.get("next") if isinstance(paging, dict) else None
        # The next page's URL carries its own query (the cursor, the limit).
        url = following if isinstance(following, str) and following else None
        params = None
    return templates


def _retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


def read_template(raw: Any) -> Template | None:
    """One entry of the list; None for one that is not a template as documented."""
    if not isinstance(raw, dict):
        return None
    name, language, status = raw.get("name"), raw.get("language"), raw.get("status")
    if not (isinstance(name, str) and isinstance(language, str) and isinstance(status, str)):
        return None
    components = [c for c in raw.get("components") or [] if isinstance(c, dict)]
    if raw.get("parameter_format") == "NAMED":
        components = [{**c, "parameter_format": "NAMED"} for c in components]
    external_id = raw.get("id")
    category = raw.get("category")
    return Template(
        external_id=str(external_id) if external_id is not None else None,
        name=name,
        language=language,
        status=status.upper(),
        category=category if isinstance(category, str) else None,
        components=components,
    )


def _names(text: str) -> list[str]:
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def _text_needs(text: Any) -> dict[str, Any]:
    names = _names(text) if isinstance(text, str) else []
    named = any(not n.isdigit() for n in names)
    return {"count": len(names), "named": named, "names": names if named else []}


def requirements(components: list[dict[str, Any]]) -> dict[str, Any]:
    """What a template needs filled in: ``header`` (None, text or media), ``body``,
    and one entry per ``buttons`` button that takes a parameter."""
    needs: dict[str, Any] = {"header": None, "body": {"count": 0, "named": False, "names": []}}
    buttons: list[dict[str, Any]] = []
    for component in components:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            header_format = str(component.get("format", "TEXT")).upper()
            if header_format in _MEDIA_HEADERS:
                needs["header"] = {
                    "format": _MEDIA_HEADERS[header_format],
                    "count": 1,
                    "named": False,
                    "names": [],
                }
            elif header_format == "TEXT":
                text_needs = _text_needs(component.get("text"))
                if text_needs["count"]:
                    needs["header"] = {"format": "text", **text_needs}
        elif kind == "BODY":
            needs["body"] = _text_needs(component.get("text"))
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or []):
                if not isinstance(button, dict):
                    continue
                button_type = str(button.get("type", "")).upper()
                if button_type == "URL" and _names(str(button.get("url", ""))):
                    buttons.append({"index": index, "type": "url", "count": 1})
                elif button_type == "COPY_CODE":
                    buttons.append({"index": index, "type": "copy_code", "count": 1})
    needs["buttons"] = buttons
    return needs


def _values(
    field: str, need: dict[str, Any], given: list[str] | dict[str, str], what: str
) -> list[tuple[str | None, str]]:
    """The values for one component in placeholder order, as (name, value) pairs."""
    if need["named"]:
        if not isinstance(given, dict):
            names = ", ".join(need["names"])
            raise TemplateError(field, f"{what} takes named parameters ({names}), given by name")
        missing = [n for n in need["names"] if not str(given.get(n, "")).strip()]
        if missing:
            raise TemplateError(field, f"{what} needs {', '.join(missing)}")
        unknown = sorted(set(given) - set(need["names"]))
        if unknown:
            raise TemplateError(field, f"{what} has no parameter {', '.join(unknown)}")
        return [(n, given[n]) for n in need["names"]]
    if isinstance(given, dict):
        raise TemplateError(field, f"{what} takes {need['count']} positional parameters, a list")
    if len(given) != need["count"]:
        raise TemplateError(field, f"{what} takes {need['count']} parameters; {len(given)} given")
    for position, value in enumerate(given, start=1):
        if not value.strip():
            raise TemplateError(f"{field}[{position - 1}]", f"{what} parameter {position} is empty")
    return [(None, v) for v in given]


def _text_parameters(values: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": value, **({"parameter_name": name} if name else {})}
        for name, value in values
    ]


def _render(text: str, values: list[tuple[str | None, str]]) -> str:
    by_key = {(name if name else str(i)): v for i, (name, v) in enumerate(values, start=1)}
    return _PLACEHOLDER.sub(lambda m: by_key.get(m.group(1), m.group(0)), text)


def fill(
    template: Template,
    body: list[str] | dict[str, str],
    header: list[str] | dict[str, str],
    buttons: list[str],
) -> FilledTemplate:
    """The template with these parameters, or TemplateError naming what does not fit."""
    needs = requirements(template.components)
    components: list[dict[str, Any]] = []
    lines: list[str] = []
    header_need = needs["header"]
    texts = {str(c.get("type", "")).upper(): c for c in template.components}
    if header_need is None:
        if header:
            raise TemplateError("parameters.header", f"{template.name} takes no header parameter")
    elif header_need["format"] == "text":
        values = _values("parameters.header", header_need, header, "the header")
        components.append({"type": "header", "parameters": _text_parameters(values)})
        lines.append(_render(str(texts["HEADER"].get("text", "")), values))
    else:
        kind = header_need["format"]
        links = _values("parameters.header", header_need, header, f"the {kind} header")
        link = links[0][1]
        if not re.match(r"^https?://", link):
            raise TemplateError(
                "parameters.header[0]", f"the {kind} header takes a link (https://...)"
            )
        components.append({"type": "header", "parameters": [{"type": kind, kind: {"link": link}}]})
    body_values = _values("parameters.body", needs["body"], body, "the body")
    if body_values:
        components.append({"type": "body", "parameters": _text_parameters(body_values)})
    if "BODY" in texts:
        lines.append(_render(str(texts["BODY"].get("text", "")), body_values))
    if "FOOTER" in texts and texts["FOOTER"].get("text"):
        lines.append(str(texts["FOOTER"]["text"]))
    button_needs = needs["buttons"]
    if len(buttons) != len(button_needs):
        raise TemplateError(
            "parameters.buttons",
            f"the buttons take {len(button_needs)} parameters; {len(buttons)} given",
        )
    for need, value in zip(button_needs, buttons, strict=True):
        parameter: dict[str, Any] = (
            {"type": "coupon_code", "coupon_code": value}
            if need["type"] == "copy_code"
            else {"type": "text", "text": value}
        )
        components.append(
            {
                "type": "button",
                "sub_type": need["type"],
                "index": str(need["index"]),
                "parameters": [parameter],
            }
        )
    payload: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        payload["components"] = components
    return FilledTemplate(payload=payload, text="\n\n".join(line for line in lines if line))
