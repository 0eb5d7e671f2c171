"""Reading /metrics as Prometheus does."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One series' value; 0 for a series not (yet) exported."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(service: Any) -> str:
    response = service.client().get("/metrics")
    assert response.status_code == 200, response.text
    return str(response.text)
