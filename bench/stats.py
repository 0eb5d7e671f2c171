"""Percentiles of one run, and the median with min-max over several runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary_ms(latencies_us: Sequence[int]) -> dict[str, float | None]:
    ordered = sorted(latencies_us)

    def ms(fraction: float) -> float | None:
        value = percentile(ordered, fraction)
        return None if value is None else round(value / 1000, 3)

    return {
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
        "max_ms": None if not ordered else round(ordered[-1] / 1000, 3),
    }


def spread(values: Sequence[float | int | None]) -> dict[str, Any] | None:
    """Median with min and max over runs; None when no run produced the figure."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {
        "median": _round(statistics.median(present)),
        "min": _round(min(present)),
        "max": _round(max(present)),
        "runs": [_round(v) for v in present],
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _round(value: float) -> float:
    return round(float(value), 3)
