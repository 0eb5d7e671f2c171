"""`python -m bench.ratelimits`: what the rate limits cost a REST request.

Starts two `inbox serve` processes on one fresh SQLite database, one with
`INBOX_RATE_LIMITS=off` and one with budgets far above the load, both with Redis (the
limiter's shared budgets, one script call per request) or both without (budgets in
memory). One client walks the REST API from one credential (list channels, list
contacts, read one contact, `/api/auth/me`, make a contact), sending each request to
one server and then to the other, so that both meet the same minutes of the machine.
Each round is `--requests` requests to each; the figures are each server's CPU per
request (user + system, from /proc) and the median of the rounds' ratios.

    .venv/bin/python -m bench.ratelimits                 # both backends, 5 rounds of 1000
    .venv/bin/python -m bench.ratelimits --backend redis --rounds 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from .procstat import process_cpu_seconds
from .servers import HOST, start_redis, start_service

HIGH = "auth=1000000/minute,read=100000000/minute,write=100000000/minute,leads=1000000/minute"
SECRET_KEY = "bench-ratelimits-signing-key-0123456789"


def walker(base: str, token: str) -> Generator[Callable[[], None], None, None]:
    """An endless walk of one credential over the REST API: each item, one request."""
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    with client:
        contact = client.post("/api/contacts", json={"name": "Walker"}).json()["id"]
        steps = [
            ("GET", "/api/channels", None),
            ("GET", "/api/contacts", None),
            ("GET", f"/api/contacts/{contact}", None),
            ("GET", "/api/auth/me", None),
            ("POST", "/api/contacts", {"name": "Walked"}),
        ]

        def step(method: str, path: str, body: object) -> Callable[[], None]:
            def request() -> None:
                r = client.request(method, path, json=body)
                if r.status_code >= 400:
                    raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:200]}")
            return request

        while True:
            yield from (step(*s) for s in steps)


def compare(work: Path, env: dict[str, str], redis_url: str | None, token: str,
            requests: int, rounds: int, server_cpus: list[int] | None) -> dict[str, object]:
    """Both servers' CPU seconds per request, round by round, walked in alternation."""
    servers = {}
    walks: dict[str, Generator[Callable[[], None], None, None]] = {}
    try:
        for name, limits in (("off", "off"), ("on", HIGH)):
            servers[name] = start_service(
                f"inbox-ratelimits-{name}", work, database_url=env["INBOX_DATABASE_URL"],
                redis_url=redis_url, secret_key=SECRET_KEY, cpus=server_cpus,
                extra_env={"INBOX_SECRETS_KEY": env["INBOX_SECRETS_KEY"],
                           "INBOX_LOG_LEVEL": "warning", "INBOX_RATE_LIMITS": limits},
            )
        walks = {name: walker(f"http://{HOST}:{port}", token)
                 for name, (_, port) in servers.items()}
        runs: dict[str, list[float]] = {"off": [], "on": []}
        for n in range(rounds + 1):
            before = {name: process_cpu_seconds(p.pid) for name, (p, _) in servers.items()}
            # The first round warms both up and is not counted.
            for _ in range(requests if n else 200):
                next(walks["off"])()
                next(walks["on"])()
            if n:
                for name, (p, _) in servers.items():
                    runs[name].append((process_cpu_seconds(p.pid) - before[name]) / requests)
        ratios = [on / off for off, on in zip(runs["off"], runs["on"], strict=True)]
        off_ms = statistics.median(runs["off"]) * 1000
        on_ms = statistics.median(runs["on"]) * 1000
        return {
            "cpu_ms_per_request_off": round(off_ms, 3),
            "cpu_ms_per_request_on": round(on_ms, 3),
            "difference_percent": round((statistics.median(ratios) - 1) * 100, 1),
            "ratios": [round(r, 3) for r in ratios],
            "runs_off_ms": [round(v * 1000, 3) for v in runs["off"]],
            "runs_on_ms": [round(v * 1000, 3) for v in runs["on"]],
        }
    finally:
        for walk in walks.values():
            walk.close()
        for process, _ in servers.values():
            process.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ratelimits", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=1000, help="requests to each server per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backend", choices=("memory", "redis", "both"), default="both")
    args = p.parse_args(argv)

    # Servers on CPU 0, this client on CPU 1: the client's work does not land on the
    # servers' figures' CPU.
    server_cpus = [0] if (os.cpu_count() or 1) >= 2 else None
    if server_cpus:
        os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="inbox-bench-ratelimits-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INBOX_")},
        "INBOX_ENV": "production",
        "INBOX_DATABASE_URL": f"sqlite:///{work / 'inbox.db'}",
        "INBOX_SECRET_KEY": SECRET_KEY,
        "INBOX_SECRETS_KEY": Fernet.generate_key().decode(),
    }
    made = subprocess.run(
        [sys.executable, "-m", "bench.fixtures"], env=env, capture_output=True, check=True
    )
    token = json.loads(made.stdout.decode().strip().splitlines()[-1])["token"]
    redis = None
    backends = ["memory", "redis"] if args.backend == "both" else [args.backend]
    results = {}
    try:
        if "redis" in backends:
            redis, redis_url = start_redis(work)
        for backend in backends:
            url = redis_url if backend == "redis" else None
            results[backend] = compare(work, env, url, token, args.requests, args.rounds,
                                       server_cpus)
    finally:
        if redis is not None:
            redis.stop()
    print(json.dumps({"requests": args.requests, "rounds": args.rounds, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
