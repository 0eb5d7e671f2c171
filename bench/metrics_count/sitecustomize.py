"""Prometheus figures counted, for `bench.metrics_cost`: each server process of a run
started with

    BENCH_SERVER_ENV=PYTHONPATH=$PWD/bench/metrics_count,BENCH_METRICS_COUNTS=DIR

still counts everything, and also notes how many times each metric was incremented,
set or observed, and what each counter added up to; it writes those numbers to
``DIR/<pid>.json`` when it exits.
"""

import atexit
import collections
import json
import os
from pathlib import Path

from prometheus_client import metrics

_calls: collections.Counter[str] = collections.Counter()
# What each counter added up to (one call may add many: a batch of deliveries).
_amounts: collections.Counter[str] = collections.Counter()


def _counted(kind: str, original):  # type: ignore[no-untyped-def]
    def method(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _calls[f"{kind} {self._name}"] += 1
        if kind == "Counter.inc":
            _amounts[self._name] += args[0] if args else kwargs.get("amount", 1)
        return original(self, *args, **kwargs)

    return method


for _metric, _names in (
    (metrics.Counter, ("inc",)),
    (metrics.Gauge, ("inc", "dec", "set")),
    (metrics.Histogram, ("observe",)),
):
    for _name in _names:
        setattr(_metric, _name, _counted(f"{_metric.__name__}.{_name}", getattr(_metric, _name)))


def _write() -> None:
    directory = os.environ.get("BENCH_METRICS_COUNTS")
    if directory and _calls:
        Path(directory, f"{os.getpid()}.json").write_text(
            json.dumps({"calls": dict(_calls), "amounts": dict(_amounts)})
        )


atexit.register(_write)
