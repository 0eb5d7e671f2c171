"""`python -m bench.metrics_cost DIR [--webhook-us N]`: what the Prometheus figures cost
one webhook, counted rather than raced.

An A/B run with the metrics off (`bench/metrics_off`) differs from a plain one by a few
microseconds per webhook, far less than one run differs from the next on a shared
machine. So: run the ingest bench once with every metric call counted,

    BENCH_SERVER_ENV=PYTHONPATH=$PWD/bench/metrics_count,BENCH_METRICS_COUNTS=DIR \\
        .venv/bin/python -m bench --only ingest --runs 1

then this: it reads how many times each metric was touched per webhook received (and
per event delivered to a socket) in each server process of that run, times each kind
of call here (the same labelled children, the same buckets), and prints the metrics'
CPU time per webhook, and its share of ``--webhook-us`` (a webhook's server CPU time
from the bench's table); `--only fanout` runs give the figure per socket delivery.
"""

from __future__ import annotations

import argparse
import json
import timeit
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inbox.telemetry.metrics import HTTP_DURATION

WEBHOOKS = "inbox_webhooks_received"
DELIVERIES = "realtime_deliveries"


def per_call_ns() -> dict[str, float]:
    """One call of each kind, on a labelled child as the service keeps them."""
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["a", "b"], registry=registry).labels("x", "y")
    gauge = Gauge("g", "g", registry=registry)
    histogram = Histogram(
        "h", "h", ["a"], buckets=HTTP_DURATION._upper_bounds[:-1], registry=registry
    ).labels("x")
    calls = {
        "Counter.inc": lambda: counter.inc(),
        "Gauge.inc": lambda: gauge.inc(),
        "Gauge.dec": lambda: gauge.dec(),
        "Gauge.set": lambda: gauge.set(1),
        "Histogram.observe": lambda: histogram.observe(0.012),
    }
    number = 200_000
    return {
        kind: min(timeit.repeat(call, number=number, repeat=5)) / number * 1e9
        for kind, call in calls.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="BENCH_METRICS_COUNTS of the run")
    parser.add_argument("--webhook-us", type=float, help="a webhook's server CPU time, µs")
    args = parser.parse_args()
    cost = per_call_ns()
    print("one call, ns: " + ", ".join(f"{k} {v:.0f}" for k, v in cost.items()))
    for path in sorted(args.directory.glob("*.json")):
        run = json.loads(path.read_text())
        calls: dict[str, int] = run["calls"]
        amounts: dict[str, int] = run["amounts"]
        total_ns = sum(n * cost[name.split(" ")[0]] for name, n in calls.items())
        per_call = sum(calls.values())
        webhooks, deliveries = amounts.get(WEBHOOKS, 0), amounts.get(DELIVERIES, 0)
        if webhooks:
            us = total_ns / webhooks / 1e3
            share = (
                f", {us / args.webhook_us * 100:.2f} % of {args.webhook_us:.0f} µs"
                if args.webhook_us
                else ""
            )
            print(
                f"process {path.stem}: {webhooks} webhooks, {per_call / webhooks:.1f} "
                f"metric calls and {us:.2f} µs of CPU per webhook{share}"
            )
        if deliveries:
            print(
                f"process {path.stem}: {deliveries} socket deliveries, "
                f"{per_call / deliveries:.3f} metric calls and "
                f"{total_ns / deliveries:.1f} ns of CPU per delivery"
            )


if __name__ == "__main__":
    main()
