"""A range the reports cannot answer is refused with a 422 naming the bad field,
on every report and in either format, never a server error."""

from __future__ import annotations

from typing import Any

import pytest

REPORTS = [
    ("/api/analytics/overview", {}),
    ("/api/analytics/trends", {"metric": "messages_received"}),
    ("/api/analytics/trends", {"metric": "first_response_seconds", "interval": "week"}),
    ("/api/analytics/agents", {}),
    ("/api/analytics/overview", {"format": "csv"}),
    ("/api/analytics/trends", {"metric": "messages_sent", "format": "csv"}),
    ("/api/analytics/agents", {"format": "csv"}),
]
OUT_OF_RANGE = "must lie between 0002-01-01 and 9999-01-01 (UTC)"


def refused(api: Any, path: str, params: dict[str, Any]) -> dict[str, Any]:
    r = api.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    return error


def only_field(error: dict[str, Any]) -> str:
    [field] = error["details"]["fields"]
    name: str = field["field"]
    return name


@pytest.mark.parametrize(("path", "extra"), REPORTS)
@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"from": "0001-01-01"}, "from"),
        ({"to": "9999-12-31"}, "to"),
        ({"from": "0001-01-01", "to": "9999-12-31"}, "from"),
        ({"from": "2026-01-01", "to": "9999-12-31T23:59:59"}, "to"),
        # Inside datetime's years, outside them once moved into UTC.
        ({"from": "0001-01-01T00:30:00+01:00", "to": "2026-01-01"}, "from"),
        ({"from": "2026-01-01", "to": "9999-12-31T23:00:00-05:00"}, "to"),
    ],
)
def test_dates_beyond_the_supported_years(tenant, path, extra, dates, field):
    error = refused(tenant.api, path, {**extra, **dates, "timezone": "Europe/Berlin"})
    assert only_field(error) == field
    assert OUT_OF_RANGE in error["message"]


@pytest.mark.parametrize(("path", "extra"), REPORTS)
def test_the_ends_of_the_supported_years_answer(tenant, path, extra):
    # A zone far from UTC on both edges: its offset never steps outside the years.
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
        wide = {"from": "0002-01-01T00:00:00Z", "to": "0002-01-08T00:00:00Z", "timezone": zone}
        assert tenant.api.get(path, params={**extra, **wide}).status_code == 200
        late = {"from": "9998-12-25T00:00:00Z", "to": "9999-01-01T00:00:00Z", "timezone": zone}
        assert tenant.api.get(path, params={**extra, **late}).status_code == 200


@pytest.mark.parametrize(("path", "extra"), REPORTS)
@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"from": "2026-02-30"}, "from"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "2026-10-25T25:00"}, "to"),
        ({"from": "last tuesday"}, "from"),
        ({"from": "2026-10-25", "to": "10/26/2026"}, "to"),
    ],
)
def test_malformed_dates(tenant, path, extra, dates, field):
    error = refused(tenant.api, path, {**extra, **dates})
    assert only_field(error) == field
    assert "ISO-8601" in error["message"]


@pytest.mark.parametrize(("path", "extra"), REPORTS)
@pytest.mark.parametrize(
    "dates",
    [
        {"from": "2026-10-25", "to": "2026-10-25"},
        {"from": "2026-10-26", "to": "2026-10-25"},
        # The same instant written in two offsets.
        {"from": "2026-10-25T12:00:00+02:00", "to": "2026-10-25T10:00:00Z"},
    ],
)
def test_a_range_that_ends_where_or_before_it_begins(tenant, path, extra, dates):
    error = refused(tenant.api, path, {**extra, **dates})
    assert only_field(error) == "to"
    assert "must be after from" in error["message"]
