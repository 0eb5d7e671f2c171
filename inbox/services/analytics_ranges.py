"""Ranges and buckets of the analytics, in an organization's time zone.

A range is ``[start, end)`` in UTC. Buckets begin at local midnight (days), at
local midnight of a Monday (weeks) or on the hour: a day across a daylight-saving
change lasts 23 or 25 hours, and its hours are 23 or 25 buckets.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..errors import field_error

Interval = Literal["hour", "day", "week"]
MAX_BUCKETS = 1000
# The instants a range may span: a year inside datetime's own bounds, so that a zone's
# offset, a week's flooring and a day's end never step outside them.
EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_OUT_OF_RANGE = "must lie between 0002-01-01 and 9999-01-01 (UTC)"


def zone_named(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone ``name``; a 422 naming ``field`` for anything else."""
    # Only names of the zone database: a path or "localtime" names a file, not a zone.
    if name not in _zone_names():
        raise field_error(
            field, f"unknown time zone {name!r}: give an IANA name such as 'Europe/Berlin' or 'UTC'"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise field_error(field, f"unknown time zone {name!r}") from None


_NAMES: frozenset[str] = frozenset()


def _zone_names() -> frozenset[str]:
    global _NAMES
    if not _NAMES:
        _NAMES = frozenset(available_timezones()) | {"UTC"}
    return _NAMES


def start_of_local_day(now: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``now``'s day began in ``zone``."""
    return _midnight(now.astimezone(zone).date(), zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def parse_instant(value: str, zone: ZoneInfo, field: str) -> datetime:
    """An ISO-8601 date or date-time; without an offset it is local time in ``zone``."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise field_error(
            field,
            "must be an ISO-8601 date or date-time, e.g. 2026-03-29 or 2026-03-29T00:00:00+01:00",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        raise field_error(field, _OUT_OF_RANGE) from None
    if not EARLIEST <= instant <= LATEST:
        raise field_error(field, _OUT_OF_RANGE)
    return instant


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime
    zone: ZoneInfo

    @property
    def timezone(self) -> str:
        return self.zone.key


def resolve_range(
    start: str | None, end: str | None, zone: ZoneInfo, now: datetime | None = None
) -> Range:
    """``from``/``to`` as given, or today in ``zone``: ``to`` defaults to the day after
    ``from``'s, ``from`` to the day before ``to``'s."""
    if start is not None:
        begin = parse_instant(start, zone, "from")
    if end is not None:
        finish = parse_instant(end, zone, "to")
    if start is None and end is None:
        begin = start_of_local_day(now or datetime.now(UTC), zone)
    if start is None and end is not None:
        local = finish.astimezone(zone)
        day = local.date() if local.time() != time() else local.date() - timedelta(days=1)
        begin = _midnight(day, zone)
    if end is None:
        finish = _midnight(begin.astimezone(zone).date() + timedelta(days=1), zone)
    if finish <= begin:
        raise field_error("to", "must be after from (to is exclusive)")
    return Range(begin, finish, zone)


def _floor(at: datetime, interval: Interval, zone: ZoneInfo) -> datetime:
    local = at.astimezone(zone)
    if interval == "hour":
        # Hours are counted on the real clock: offsets are whole quarter hours, so a
        # local hour starts where the UTC time's minutes equal the offset's.
        offset = local.utcoffset() or timedelta()
        minutes = int(offset.total_seconds() // 60) % 60
        floored = at.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=minutes)
        return floored if floored <= at else floored - timedelta(hours=1)
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    return _midnight(day, zone)


def _next(boundary: datetime, interval: Interval, zone: ZoneInfo) -> datetime:
    if interval == "hour":
        return boundary + timedelta(hours=1)
    days = 7 if interval == "week" else 1
    return _midnight(boundary.astimezone(zone).date() + timedelta(days=days), zone)


def buckets(span: Range, interval: Interval) -> list[datetime]:
    """The UTC start of every bucket that overlaps ``span``, plus the end of the last;
    a 422 past MAX_BUCKETS."""
    bounds = [_floor(span.start, interval, span.zone)]
    while bounds[-1] < span.end:
        if len(bounds) > MAX_BUCKETS:
            raise field_error(
                "to",
                f"the range holds more than {MAX_BUCKETS} {interval} buckets: "
                "narrow it or choose a longer interval",
            )
        bounds.append(_next(bounds[-1], interval, span.zone))
    return bounds


def bucket_index(bounds: list[datetime], at: datetime) -> int:
    """Which bucket of ``bounds`` holds the instant ``at``."""
    return bisect_right(bounds, at) - 1


def local_iso(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).isoformat()
