"""Query helpers every resource uses: tenant-scoped lookups, paging, search."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, exists, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from ..errors import NotFound
from ..models import utcnow

M = TypeVar("M", bound=SQLModel)


async def get_owned(session: AsyncSession, model: type[M], id: int, org_id: int) -> M:
    """The row if it exists and belongs to the organization; another tenant's is "not found"."""
    row = await session.get(model, id)
    if row is None or getattr(row, "organization_id", None) != org_id:
        raise NotFound(f"{model.__name__} {id} not found")
    return row


async def count(session: AsyncSession, stmt: Select[Any]) -> int:
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    return int(total or 0)


def apply_changes(row: SQLModel, changes: dict[str, Any]) -> bool:
    """Set changed attributes; bump ``updated_at`` only when something changed."""
    changed = False
    for name, value in changes.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed and hasattr(row, "updated_at"):
        row.updated_at = utcnow()
    return changed


def omit_nulls(changes: dict[str, Any], names: Collection[str] | None = None) -> dict[str, Any]:
    """A PATCH's changes where a null means "leave as is": in ``names``, or in every field."""
    return {
        k: v for k, v in changes.items() if v is not None or (names is not None and k not in names)
    }


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_any(text: str, *columns: Any) -> ColumnElement[bool]:
    pattern = like_pattern(text.strip())
    return or_(*(col.ilike(pattern, escape="\\") for col in columns))


def json_array_contains(dialect: str, column: Any, value: str) -> ColumnElement[bool]:
    """True where a JSON array column holds ``value``, in each database's own terms."""
    if dialect == "postgresql":
        return cast(ColumnElement[bool], column.cast(JSONB).contains([value]))
    elements = func.json_each(column).table_valued("value")
    return exists(
        select(literal_column("1")).select_from(elements).where(elements.c.value == value)
    )


def dialect_of(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None
    return bind.dialect.name
