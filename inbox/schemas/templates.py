from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from .common import Input, Output


class TemplateParameters(Input):
    body: list[str] | dict[str, str] = Field(
        default_factory=list,
        max_length=100,
        description="The body's values: a list for {{1}}, {{2}}, ...; an object by name "
        "for a template with named parameters.",
    )
    header: list[str] | dict[str, str] = Field(
        default_factory=list,
        max_length=1,
        description="A text header's value, or a media header's link.",
    )
    buttons: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="One value per button that takes one (a URL's end, a coupon code), "
        "in the order of the buttons.",
    )


class TemplateSend(Input):
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16, description="e.g. en_US")
    parameters: TemplateParameters = Field(default_factory=TemplateParameters)


class ComponentNeeds(Output):
    count: int
    named: bool
    names: list[str]


class HeaderNeeds(ComponentNeeds):
    format: str = Field(description="text, image, video or document")


class ButtonNeeds(Output):
    index: int
    type: str = Field(description="url or copy_code")
    count: int


class TemplateNeeds(Output):
    header: HeaderNeeds | None
    body: ComponentNeeds
    buttons: list[ButtonNeeds]


class TemplatePublic(Output):
    id: int
    channel_id: int
    name: str
    language: str
    category: str | None
    status: str
    parameters: TemplateNeeds
    components: list[dict[str, Any]] = Field(
        description="As the platform lists them: the text of header, body, footer, buttons."
    )
    updated_at: datetime


class TemplateQuery(Input):
    status: str | None = Field(default=None, max_length=32, description="e.g. APPROVED")
