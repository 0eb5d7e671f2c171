"""`python -m bench [--quick] [--only fanout,ingest,...]`: run the benchmark suite.

Starts every server it needs on 127.0.0.1, runs the generator pinned to its own
core, writes `bench/results/latest.{json,md}` (`quick.{json,md}` with --quick) and
stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import report
from .environment import Environment, Options
from .procstat import load_average
from .scenarios import cluster, fanout, ingest, memory, replay
from .scenarios.common import Entry, guarded, progress

SCENARIOS: dict[str, Callable[[Environment], list[Entry]]] = {
    "fanout": fanout.run,
    "ingest": ingest.run,
    "memory": memory.run,
    "replay": replay.run,
    "cluster": cluster.run,
}
QUICK: dict[str, Any] = {"runs": 1, "clients": 200, "duration": 3.0, "memory_clients": 1000,
         "replay_events": 2000, "ingest_subscribers": 20}
NOISE_NOTE = (
    "other work shared this machine while it ran (see the load averages and the share of "
    "the server core other processes took): absolute rates and latencies are noisy; the "
    "ratios to the reference and the CPU time per delivery hold up better."
)


def parse_rates(text: str) -> tuple[float | None, ...]:
    return tuple(None if r.strip() in ("max", "unthrottled") else float(r)
                 for r in text.split(",") if r.strip())


def parse_cpus(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in text.split(",") if c.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="one short run of each, fewer clients (checks that it all works)")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--runs", type=int, help="runs per figure (default 3)")
    p.add_argument("--clients", type=int, help="fan-out clients (default 1000)")
    p.add_argument("--duration", type=float, help="seconds per measured window (default 10)")
    p.add_argument("--rates", type=parse_rates, help="events/s, 'max' = closed loop "
                   "(default 10,100,max)")
    p.add_argument("--drivers", help="fan-out drivers: whatsapp,generic (default both)")
    p.add_argument("--in-flight", type=int, help="closed loop: events in flight (default 16)")
    p.add_argument("--memory-clients", type=int, help="idle connections (default 5000)")
    p.add_argument("--replay-events", type=int, help="missed events to replay (default 10000)")
    p.add_argument("--ingest-subscribers", type=int, help="clients in the 'with subscribers' "
                   "ingest runs (default 100)")
    p.add_argument("--no-stalled", action="store_true", help="skip the stalled-client run")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the reference server (no ratios; needs no Redis for fan-out)")
    p.add_argument("--server-cpus", type=parse_cpus, help="CPUs for servers (default 0)")
    p.add_argument("--loadgen-cpus", type=parse_cpus, help="CPUs for the generator (default 1)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--postgres-url", default=os.environ.get("INBOX_BENCH_POSTGRES_URL"),
                   help="a PostgreSQL server where databases may be created and dropped "
                   "(default: $INBOX_BENCH_POSTGRES_URL, else a throwaway cluster)")
    p.add_argument("--redis-url", default=os.environ.get("INBOX_BENCH_REDIS_URL"),
                   help="a Redis to use (default: $INBOX_BENCH_REDIS_URL, else a throwaway one)")
    p.add_argument("--out", type=Path, help="results directory (default bench/results)")
    p.add_argument("--profile", action="store_true",
                   help="record py-spy profiles of the servers into <out>/profiles/")
    p.add_argument("--note", help="a remark for the results file")
    p.add_argument("--checkout", type=Path,
                   help="run the fixtures and the services from this source tree (e.g. an "
                   "earlier commit's `git archive`, unpacked), to compare with this one")
    return p


def options_from(args: argparse.Namespace) -> Options:
    options = Options(**QUICK) if args.quick else Options()
    options = replace(options, quick=args.quick)
    chosen: dict[str, Any] = {
        "runs": args.runs, "clients": args.clients, "duration": args.duration,
        "rates": args.rates, "in_flight": args.in_flight,
        "memory_clients": args.memory_clients, "replay_events": args.replay_events,
        "ingest_subscribers": args.ingest_subscribers, "out": args.out,
        "postgres_url": args.postgres_url, "redis_url": args.redis_url,
        "server_cpus": args.server_cpus, "loadgen_cpus": args.loadgen_cpus,
        "checkout": args.checkout,
    }
    if args.drivers:
        chosen["drivers"] = tuple(d.strip() for d in args.drivers.split(",") if d.strip())
    if args.only:
        names = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = set(names) - set(SCENARIOS)
        if unknown:
            raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        chosen["scenarios"] = names
    options = replace(options, **{k: v for k, v in chosen.items() if v is not None})
    if args.note:
        options = replace(options, note=args.note)
    if args.profile:
        options = replace(options, profile=options.out / "profiles")
    if args.no_stalled:
        options = replace(options, stalled=False)
    if args.no_reference:
        options = replace(options, reference=False)
    if args.no_pin or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        options = replace(options, server_cpus=None, loadgen_cpus=None)
    return options


def raise_fd_limit() -> None:
    """Servers and generators inherit it: 5,000 sockets need more than the usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = options_from(args)
    raise_fd_limit()
    # SIGTERM unwinds like Ctrl-C, so every server started is stopped.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(options, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(options: Options, argv: list[str] | None) -> int:
    started = datetime.now(UTC)
    meta: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(
            ["python -m bench", shlex.join(argv if argv is not None else sys.argv[1:])]
        ).strip(),
        "machine": report.machine(),
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_average()],
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()
                    if k not in ("postgres_url", "redis_url")},
        "note": options.note or NOISE_NOTE,
    }
    entries: list[Entry] = []
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        env = Environment(options, stack)
        for name in options.scenarios:
            progress(f"scenario {name}")
            entries += guarded(name, lambda name=name: SCENARIOS[name](env))  # type: ignore[misc]
    meta["load_after"] = [round(x, 2) for x in load_average()]
    meta["duration_s"] = round(time.monotonic() - began)
    path = report.write(options.out, "quick" if options.quick else "latest", meta, entries)
    print(path.read_text())
    progress(f"results: {path} ({meta['duration_s']} s)")
    return 1 if any("error" in e for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
