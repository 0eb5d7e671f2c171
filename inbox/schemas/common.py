"""Lists, errors and the query parameters every list shares."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Order = Literal["asc", "desc"]


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int
    has_more: bool


class Page(BaseModel, Generic[T]):
    data: list[T]
    pagination: Pagination

    @classmethod
    def of(cls, items: list[Any], *, total: int, limit: int, offset: int) -> Page[T]:
        return cls(
            data=items,
            pagination=Pagination(
                total=total, limit=limit, offset=offset, has_more=offset + len(items) < total
            ),
        )


DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 10_000_000
# The last page that still starts within MAX_OFFSET at the largest page size, so that
# any page and per_page within bounds make an offset within bounds.
MAX_PAGE = MAX_OFFSET // MAX_LIMIT + 1


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size, at most 200."
    )
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class PageNumbers(BaseModel):
    """Page numbers, as other CRMs count: another way to say offset and limit.

    Every list that takes ``offset``/``limit`` (a ``PageQuery``) takes these too.
    """

    page: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PAGE,
        description="1-based page number, instead of offset: offset = (page - 1) * per_page.",
    )
    per_page: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LIMIT,
        description="Page size, instead of limit: 50 by default, at most 200.",
    )


class ErrorDetail(BaseModel):
    code: str = Field(examples=["VALIDATION_ERROR"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Input(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)
