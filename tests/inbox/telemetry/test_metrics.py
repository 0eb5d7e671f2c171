"""GET /metrics: who may scrape it, and what the figures count."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from inbox.app import create_app
from tests.inbox.platforms import post_meta, whatsapp_channel, whatsapp_text
from tests.inbox.telemetry.scraping import samples, scrape, value


async def scrape_as(
    service, client: str, token: str | None, header: str | None, **extra: str
) -> httpx.Response:
    update = {"metrics_token": SecretStr(token) if token is not None else None}
    app = create_app(service.settings.model_copy(update=update))
    transport = httpx.ASGITransport(app=app, client=(client, 40000))
    headers = {"Authorization": header} if header is not None else {}
    headers.update(extra)
    async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as http:
        return await http.get("/metrics", headers=headers)


@pytest.mark.parametrize("client", ["127.0.0.1", "::1"])
async def test_without_a_token_a_loopback_client_may_scrape(service, client):
    response = await scrape_as(service, client, None, None)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "inbox_http_requests_total" in response.text


@pytest.mark.parametrize("client", ["203.0.113.9", "10.0.0.2", "testclient"])
async def test_without_a_token_any_other_client_is_refused(service, client):
    response = await scrape_as(service, client, None, "Bearer anything")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "AUTHORIZATION_FAILED"
    assert "INBOX_METRICS_TOKEN" in response.json()["error"]["message"]


@pytest.mark.parametrize("forwarding", [
    {"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
    {"X-Real-IP": "203.0.113.9"}])
async def test_without_a_token_a_request_through_a_proxy_on_loopback_is_refused(
    service, forwarding
):
    """nginx on the same host connects from 127.0.0.1 for whoever asked it."""
    response = await scrape_as(service, "127.0.0.1", None, None, **forwarding)

    assert response.status_code == 403
    assert "proxy" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", "Basic bWV0cmljcy1zZWNyZXQ=", "metrics-secret"]
)
async def test_with_a_token_a_scrape_without_it_is_refused_even_from_loopback(service, header):
    response = await scrape_as(service, "127.0.0.1", "metrics-secret", header)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"


async def test_with_a_token_any_client_that_sends_it_may_scrape(service):
    response = await scrape_as(service, "203.0.113.9", "metrics-secret", "Bearer metrics-secret")

    assert response.status_code == 200
    assert "inbox_webhooks_received_total" in response.text


def test_requests_are_counted_by_route_template_not_by_path(service, tenant):
    before = scrape(service)
    for conversation_id in (987654321, 987654322):
        assert tenant.api.get(f"/api/conversations/{conversation_id}").status_code == 404
    for path in ("/no/such/page-1", "/no/such/page-2"):
        assert tenant.api.get(path).status_code == 404
    after = scrape(service)

    template = {"route": "/api/conversations/{conversation_id}", "method": "GET", "status": "404"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    for labels in (template, unmatched):
        counted = value(after, "inbox_http_requests_total", **labels)
        assert counted - value(before, "inbox_http_requests_total", **labels) == 2
    routes = {dict(labels).get("route") for _name, labels in samples(after)}
    assert not any(route and ("987654321" in route or "page-1" in route) for route in routes)
    # Each request's time is in the histogram of its route.
    timed = {"route": "/api/conversations/{conversation_id}", "method": "GET"}
    assert value(after, "inbox_http_request_duration_seconds_count", **timed) >= 2


def test_webhooks_are_counted_once_by_how_they_ended(service, tenant):
    channel = whatsapp_channel(tenant)
    other = whatsapp_channel(tenant)
    text = whatsapp_text(channel, "wamid.metrics-1", "hello")
    # A number of the same app that is not connected here: signed, acknowledged, not stored.
    unknown = text.replace(channel.key.encode(), b"999000111222")
    before = scrape(service)

    assert post_meta(service, "whatsapp", text, channel.secret).json()["stored"] == 1
    assert post_meta(service, "whatsapp", text, channel.secret).json()["duplicates"] == 1
    assert post_meta(service, "whatsapp", text, "not-the-secret").status_code == 401
    assert post_meta(service, "whatsapp", unknown, other.secret).status_code == 200
    assert post_meta(service, "whatsapp", b"{not json", channel.secret).status_code == 400
    not_an_object = json.dumps([1]).encode()
    assert post_meta(service, "whatsapp", not_an_object, channel.secret).status_code == 400
    after = scrape(service)

    moved = {
        outcome: value(after, "inbox_webhooks_received_total", kind="whatsapp", outcome=outcome)
        - value(before, "inbox_webhooks_received_total", kind="whatsapp", outcome=outcome)
        for outcome in (
            "stored", "duplicate", "ignored", "bad_signature", "unknown_channel", "malformed",
            "failed",
        )
    }
    assert moved == {
        "stored": 1, "duplicate": 1, "ignored": 0, "bad_signature": 1, "unknown_channel": 1,
        "malformed": 2, "failed": 0,
    }
    # The stored one went through a group commit and out as events.
    assert value(after, "inbox_group_commit_batch_size_count") > value(
        before, "inbox_group_commit_batch_size_count"
    )
    assert value(after, "inbox_events_published_total") > value(
        before, "inbox_events_published_total"
    )


def test_no_series_is_labelled_by_organization_or_user(service, tenant):
    names = {label for _name, labels in samples(scrape(service)) for label, _value in labels}

    assert not names & {"organization_id", "organization", "org", "user_id", "user", "path"}
