"""GET /metrics counts outgoing-webhook deliveries by outcome."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.inbox.receiver import Answer, Receiver, eventually
from tests.inbox.telemetry.scraping import scrape, value

SERIES = "inbox_outgoing_webhook_deliveries_total"


@pytest.fixture()
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    flaky, gone = Receiver(), Receiver()
    yield flaky, gone
    flaky.close()
    gone.close()


def test_attempts_are_counted_as_succeeded_retried_or_failed(
    service: Any, tenant: Any, receivers: tuple[Receiver, Receiver]
) -> None:
    flaky, gone = receivers
    flaky.answer(Answer(status=503))
    gone.answer(Answer(status=410))
    hooks = [
        tenant.api.post("/api/webhooks", json={"url": r.url, "events": ["*"]}).json()
        for r in receivers
    ]
    before = scrape(service)

    for hook in hooks:
        assert tenant.api.post(f"/api/webhooks/{hook['id']}/test").status_code == 202
    flaky.received(2)
    gone.received(1)
    path = f"/api/webhooks/{hooks[0]['id']}/deliveries"
    eventually(lambda: tenant.api.get(path, params={"status": "succeeded"}).json()["data"])

    def moved() -> dict[str, float]:
        after = scrape(service)
        return {
            outcome: value(after, SERIES, outcome=outcome) - value(before, SERIES, outcome=outcome)
            for outcome in ("succeeded", "retry", "failed")
        }

    # The flaky receiver's 503 (retried), then its 2xx; the 410, which is final. The
    # service's other tenants may be sending meanwhile: at least these are counted.
    assert eventually(lambda: all(n >= 1 for n in moved().values()))
