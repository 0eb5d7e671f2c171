"""The dashboard and the alerting rules read series the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.inbox.telemetry.scraping import samples, scrape

DOCS = Path(__file__).resolve().parents[3] / "docs"
NAME = re.compile(r"\b(?:inbox|realtime)_[a-z_]+[a-z]")


def named_in(text: str) -> set[str]:
    return {name for name in NAME.findall(text) if not name.startswith("inbox_metrics")}


def test_every_series_the_dashboard_and_the_alerts_name_exists(service, tenant):
    tenant.api.get("/api/conversations")  # so that the HTTP series exist in a fresh service
    exported = {name for name, _labels in samples(scrape(service))}
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    expressions = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    alerts = (DOCS / "alerts.md").read_text()

    for source, text in (("dashboard", expressions), ("alerts", alerts)):
        named = named_in(text)
        assert named, source
        assert named <= exported, (source, sorted(named - exported))
