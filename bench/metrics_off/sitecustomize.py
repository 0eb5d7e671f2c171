"""Prometheus figures turned into no-ops, for an A/B run of what they cost:

    BENCH_SERVER_ENV=PYTHONPATH=$PWD/bench/metrics_off .venv/bin/python -m bench --only ingest

Python imports `sitecustomize` from the path at start-up, so every server process of
that run counts nothing, and the run differs from a plain one by the metrics alone.
"""

from prometheus_client import metrics


def _nothing(*_args: object, **_kwargs: object) -> None:
    return None


for _metric, _names in (
    (metrics.Counter, ("inc",)),
    (metrics.Gauge, ("inc", "dec", "set")),
    (metrics.Histogram, ("observe",)),
):
    for _name in _names:
        setattr(_metric, _name, _nothing)
