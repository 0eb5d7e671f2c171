"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_text(value: datetime | None) -> str | None:
    """SQLite's DATETIME text of a moment: naive UTC, as `_SQLiteDateTime` stores it."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.isoformat(" ", "microseconds")
    # In UTC the text ends in "+00:00": cut off, cheaper than replace(tzinfo=None).
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]


def _aware_utc(value: datetime | None) -> datetime | None:
    """A moment as PostgreSQL's driver takes it: aware, in UTC (naive means UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _SQLiteDateTime(DATETIME):
    """SQLite's DATETIME text, written and read by `datetime`'s own ISO code.

    The same text as SQLAlchemy's default storage format (``2026-11-22
    12:00:00.000000``), without its %-formatting and regex: every message stored
    binds several."""

    def bind_processor(self, dialect: Dialect) -> Any:
        return _sqlite_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        def process(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return process


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite keeps naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            sqlite_type = _SQLiteDateTime()  # type: ignore[no-untyped-call]  # untyped __init__
            return dialect.type_descriptor(sqlite_type)
        return dialect.type_descriptor(self.impl)

    def bind_processor(self, dialect: Dialect) -> Any:
        # One function per value, without the layers of calls of TypeDecorator's
        # process_bind_param: a batch of messages binds hundreds.
        # PostgreSQL's driver takes datetimes as they are: no impl processor to keep.
        return _sqlite_text if dialect.name == "sqlite" else _aware_utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
