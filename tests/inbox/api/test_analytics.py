"""The analytics reports return exactly the hand-computed figures of a known history."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.inbox.api.analytics_history import ZONE, History, build_history

THREE_DAYS = {"from": "2026-10-24", "to": "2026-10-27"}
SUNDAY = {"from": "2026-10-25", "to": "2026-10-26"}


@pytest.fixture(scope="module")
def history(service: Any) -> tuple[Any, History]:
    tenant = service.new_tenant()
    neighbour = service.new_tenant()
    # Another organization's history on the same days never counts.
    build_history(neighbour)
    return tenant, build_history(tenant)


def data(api: Any, path: str, **params: Any) -> Any:
    r = api.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_the_overview_of_three_days_around_the_change(history):
    tenant, h = history
    assert data(tenant.api, "/api/analytics/overview", **THREE_DAYS) == {
        "range": {
            "from": "2026-10-24T00:00:00+02:00",
            "to": "2026-10-27T00:00:00+01:00",
            "timezone": ZONE,
        },
        "conversations": {
            "opened": 5,
            "closed": 2,
            "open_now": 2,
            "pending_now": 1,
            "unassigned_now": 1,
        },
        # Private notes are not sent.
        "messages": {"received": 8, "sent": 4},
        "contacts": {"created": 3},
        "leads": {"created": 3, "converted": 2, "conversion_rate": 0.6667},
        # 600, 1200, 2700, 3600: the mean of the middle two; the 4th of 4 is the 90th.
        "first_response_seconds": {"median": 1950.0, "p90": 3600.0, "count": 4},
        # c1 7200 s, c2 79200 s (opened 00:30, closed 22:30 the same day).
        "resolution_seconds": {"median": 43200.0, "p90": 79200.0, "count": 2},
        "by_channel": [
            {
                "channel_id": h.wa,
                "kind": "whatsapp",
                "name": "WhatsApp line",
                "received": 5,
                "sent": 3,
                "conversations_opened": 3,
            },
            {
                "channel_id": h.sms,
                "kind": "sms",
                "name": "SMS line",
                "received": 3,
                "sent": 1,
                "conversations_opened": 2,
            },
        ],
    }


def test_the_25_hour_sunday_alone(history):
    tenant, _ = history
    sunday = data(tenant.api, "/api/analytics/overview", **SUNDAY)
    assert sunday["range"] == {
        "from": "2026-10-25T00:00:00+02:00",
        "to": "2026-10-26T00:00:00+01:00",
        "timezone": ZONE,
    }
    assert sunday["messages"] == {"received": 3, "sent": 2}
    assert sunday["conversations"]["opened"] == 2
    assert sunday["conversations"]["closed"] == 1
    assert sunday["first_response_seconds"] == {"median": 2100.0, "p90": 3600.0, "count": 2}
    assert sunday["leads"] == {"created": 1, "converted": 1, "conversion_rate": 1.0}


def test_a_timezone_override_moves_the_day(history):
    tenant, _ = history
    utc = data(tenant.api, "/api/analytics/overview", timezone="UTC", **SUNDAY)
    assert utc["range"] == {
        "from": "2026-10-25T00:00:00+00:00",
        "to": "2026-10-26T00:00:00+00:00",
        "timezone": "UTC",
    }
    # 00:30, 01:10, 01:40, 23:00 and 23:07 UTC.
    assert utc["messages"]["received"] == 5


def test_ranges_that_start_and_end_inside_a_quarter_hour(history):
    tenant, _ = history
    edges = {"from": "2026-10-25T23:05:00Z", "to": "2026-10-26T09:30:00+01:00"}
    assert data(tenant.api, "/api/analytics/overview", **edges)["messages"]["received"] == 1
    within = {"from": "2026-10-25T23:06:00Z", "to": "2026-10-25T23:08:00Z"}
    assert data(tenant.api, "/api/analytics/overview", **within)["messages"]["received"] == 1
    exact = {"from": "2026-10-25T23:00:00Z", "to": "2026-10-25T23:07:00Z"}
    assert data(tenant.api, "/api/analytics/overview", **exact)["messages"]["received"] == 1


def test_an_empty_range_and_the_default_range_today(history):
    tenant, _ = history
    empty = data(tenant.api, "/api/analytics/overview", **{"from": "2026-11-01"})
    assert empty["messages"] == {"received": 0, "sent": 0}
    assert empty["first_response_seconds"] == {"median": None, "p90": None, "count": 0}
    assert empty["resolution_seconds"] == {"median": None, "p90": None, "count": 0}
    assert empty["leads"]["conversion_rate"] is None
    today = data(tenant.api, "/api/analytics/overview")
    midnight = (
        datetime.now(UTC)
        .astimezone(ZoneInfo(ZONE))
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    assert today["range"]["from"] == midnight.isoformat()
    assert today["conversations"]["open_now"] == 2


def points(api: Any, **params: Any) -> list[tuple[str, Any]]:
    trend = data(api, "/api/analytics/trends", **params)
    assert trend["metric"] == params["metric"] and trend["timezone"] == params.get("timezone", ZONE)
    return [(p["start"], p["value"]) for p in trend["points"]]


DAYS = ["2026-10-24T00:00:00+02:00", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"]


@pytest.mark.parametrize(
    ("metric", "values"),
    [
        ("messages_received", [2, 3, 3]),
        ("messages_sent", [1, 2, 1]),
        ("conversations_opened", [1, 2, 2]),
        ("conversations_closed", [1, 1, 0]),
        ("leads_created", [1, 1, 1]),
        ("contacts_created", [1, 2, 0]),
        ("first_response_seconds", [1200.0, 2100.0, 2700.0]),
    ],
)
def test_every_metric_per_day(history, metric, values):
    tenant, _ = history
    got = points(tenant.api, metric=metric, interval="day", **THREE_DAYS)
    assert got == list(zip(DAYS, values, strict=True))


def test_the_hours_of_the_25_hour_day(history):
    tenant, _ = history
    received = points(tenant.api, metric="messages_received", interval="hour", **SUNDAY)
    assert len(received) == 25
    assert [start for start, _ in received[:5]] == [
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",  # the hour that comes twice
        "2026-10-25T03:00:00+01:00",
    ]
    assert received[-1][0] == "2026-10-25T23:00:00+01:00"
    assert [v for _, v in received] == [0, 0, 1, 2] + [0] * 21
    sent = points(tenant.api, metric="messages_sent", interval="hour", **SUNDAY)
    assert [v for _, v in sent] == [0, 0, 0, 2] + [0] * 21
    first = points(tenant.api, metric="first_response_seconds", interval="hour", **SUNDAY)
    assert [v for _, v in first][:5] == [None, None, None, 2100.0, None]


def test_weeks_begin_on_monday_and_one_channel_alone(history):
    tenant, h = history
    weeks = points(tenant.api, metric="messages_received", interval="week", **THREE_DAYS)
    assert weeks == [("2026-10-19T00:00:00+02:00", 5), ("2026-10-26T00:00:00+01:00", 3)]
    sms = points(
        tenant.api, metric="conversations_opened", interval="day", channel_id=h.sms, **THREE_DAYS
    )
    assert [v for _, v in sms] == [0, 1, 1]
    wa = points(tenant.api, metric="messages_sent", channel_id=h.wa, **THREE_DAYS)
    assert [v for _, v in wa] == [1, 1, 1]


def test_median_first_responses_of_one_channel_per_week_and_a_part_of_a_day(history):
    tenant, h = history
    metric = {"metric": "first_response_seconds"}
    wa = points(tenant.api, **metric, channel_id=h.wa, **THREE_DAYS)
    assert [v for _, v in wa] == [1200.0, 600.0, 2700.0]
    sms = points(tenant.api, **metric, channel_id=h.sms, **THREE_DAYS)
    assert [v for _, v in sms] == [None, 3600.0, None]
    # c1 1200, c2 3600 and c3 600 in the first week; c5 2700 in the second.
    weeks = points(tenant.api, **metric, interval="week", **THREE_DAYS)
    assert weeks == [("2026-10-19T00:00:00+02:00", 1200.0), ("2026-10-26T00:00:00+01:00", 2700.0)]
    # From 01:25 UTC on Sunday: c3's reply at 01:20 falls before the range, c2's at 01:30
    # in it; the bucket still begins at midnight.
    later = points(tenant.api, **metric, **{"from": "2026-10-25T01:25Z", "to": "2026-10-26"})
    assert later == [("2026-10-25T00:00:00+02:00", 3600.0)]


def test_the_agents(history):
    tenant, h = history
    owner = tenant.owner
    assert data(tenant.api, "/api/analytics/agents", **THREE_DAYS) == [
        {
            "user_id": owner.id,
            "name": owner.name,
            "conversations_assigned": 0,
            "conversations_closed": 0,
            "messages_sent": 0,
            "first_response_seconds_median": None,
            "online": False,
        },
        {
            "user_id": h.alice.id,
            "name": h.alice.name,
            "conversations_assigned": 2,
            "conversations_closed": 1,
            "messages_sent": 2,
            "first_response_seconds_median": 900.0,
            "online": False,
        },
        {
            "user_id": h.bob.id,
            "name": h.bob.name,
            "conversations_assigned": 2,
            "conversations_closed": 1,
            "messages_sent": 2,
            "first_response_seconds_median": 3150.0,
            "online": False,
        },
    ]


def rows_of(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def test_csv_for_spreadsheets(history):
    tenant, h = history
    overview = rows_of(
        tenant.api.get("/api/analytics/overview", params={**THREE_DAYS, "format": "csv"})
    )
    assert overview[0] == ["metric", "value"]
    assert ["messages.received", "8"] in overview
    assert ["first_response_seconds.median", "1950.0"] in overview
    assert [f"by_channel.{h.wa}.sent", "3"] in overview
    trend = rows_of(
        tenant.api.get(
            "/api/analytics/trends",
            params={**THREE_DAYS, "metric": "messages_received"},
            headers={"Accept": "text/csv"},
        )
    )
    assert trend == [
        ["start", "messages_received"],
        ["2026-10-24T00:00:00+02:00", "2"],
        ["2026-10-25T00:00:00+02:00", "3"],
        ["2026-10-26T00:00:00+01:00", "3"],
    ]
    agents = rows_of(
        tenant.api.get("/api/analytics/agents", params={**THREE_DAYS, "format": "csv"})
    )
    assert agents[0] == [
        "user_id",
        "name",
        "conversations_assigned",
        "conversations_closed",
        "messages_sent",
        "first_response_seconds_median",
        "online",
    ]
    assert agents[2] == [str(h.alice.id), h.alice.name, "2", "1", "2", "900.0", "False"]
    assert agents[1][-2] == ""  # no first response: an empty cell


def refused(api: Any, path: str, **params: Any) -> dict[str, Any]:
    r = api.get(path, params=params)
    assert r.status_code == 422, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    return error


def test_bad_ranges_zones_and_metrics_are_refused(history):
    tenant, h = history
    api = tenant.api
    error = refused(api, "/api/analytics/overview", timezone="Mars/Olympus")
    assert error["details"]["fields"][0]["field"] == "timezone"
    assert "Mars/Olympus" in error["message"]
    error = refused(api, "/api/analytics/overview", **{"from": "2026-10-25", "to": "2026-10-24"})
    assert "must be after from" in error["message"]
    error = refused(api, "/api/analytics/agents", **{"from": "yesterday"})
    assert error["details"]["fields"][0]["field"] == "from"
    error = refused(api, "/api/analytics/trends", metric="revenue")
    assert error["details"]["fields"][0]["field"] == "metric"
    refused(api, "/api/analytics/trends", metric="messages_sent", interval="month")
    error = refused(
        api, "/api/analytics/trends", metric="leads_created", channel_id=h.wa, **THREE_DAYS
    )
    assert "belongs to no channel" in error["message"]


def test_at_most_a_thousand_buckets(history):
    tenant, _ = history
    hours = {"metric": "messages_received", "interval": "hour", "timezone": "UTC"}
    # 2026-01-01T00:00Z plus 1,000 hours is 2026-02-11T16:00Z.
    thousand = points(tenant.api, **hours, **{"from": "2026-01-01", "to": "2026-02-11T16:00"})
    assert len(thousand) == 1000
    error = refused(
        tenant.api,
        "/api/analytics/trends",
        **hours,
        **{"from": "2026-01-01", "to": "2026-02-11T17:00"},
    )
    assert "more than 1000 hour buckets" in error["message"]


def test_another_tenants_figures_and_channels_are_not_ours(history, service):
    _, h = history
    stranger = service.new_tenant()
    assert data(stranger.api, "/api/analytics/overview", **THREE_DAYS)["messages"] == {
        "received": 0,
        "sent": 0,
    }
    r = stranger.api.get(
        "/api/analytics/trends",
        params={"metric": "messages_received", "channel_id": h.wa, **THREE_DAYS},
    )
    assert r.status_code == 404, r.text


def test_the_organization_time_zone(tenant):
    assert tenant.api.get("/api/organization").json()["timezone"] == "UTC"
    r = tenant.api.patch("/api/organization", json={"timezone": "Asia/Kathmandu"})
    assert r.status_code == 200, r.text
    assert r.json()["timezone"] == "Asia/Kathmandu"
    for bad in ("Europe/Nowhere", "", "../etc/passwd", None):
        r = tenant.api.patch("/api/organization", json={"timezone": bad})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["fields"][0]["field"] == "timezone"
    _, admin = tenant.user("admin")
    assert admin.patch("/api/organization", json={"timezone": "UTC"}).status_code == 200
    # Renaming stays the owner's.
    assert admin.patch("/api/organization", json={"name": "Renamed"}).status_code == 403
    _, agent = tenant.user("agent")
    assert agent.patch("/api/organization", json={"timezone": "UTC"}).status_code == 403
