"""`python -m bench.ratelimits`: what the rate limits cost a REST request.

Starts `inbox serve` on a fresh SQLite database, with Redis (the limiter's shared
budgets, one script call per request) or without (budgets in memory), and walks the
REST API from one credential: list channels, list contacts, read one contact,
`/api/auth/me`, make a contact. Each round runs the walk `--requests` times against a
server with `INBOX_RATE_LIMITS=off` and one with budgets far above the load, in
alternation (`--rounds`), and reports the server's CPU per request (user + system,
from /proc) of each, and the difference.

    .venv/bin/python -m bench.ratelimits                 # both, 3 rounds of 2000 requests
    .venv/bin/python -m bench.ratelimits --backend redis --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from .procstat import process_cpu_seconds
from .servers import HOST, start_redis, start_service

HIGH = "auth=1000000/minute,read=100000000/minute,write=100000000/minute,leads=1000000/minute"
SECRET_KEY = "bench-ratelimits-signing-key-0123456789"


def walk(base: str, token: str, requests: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        contact = client.post("/api/contacts", json={"name": "Walker"}).json()["id"]
        steps = [
            ("GET", "/api/channels", None),
            ("GET", "/api/contacts", None),
            ("GET", f"/api/contacts/{contact}", None),
            ("GET", "/api/auth/me", None),
            ("POST", "/api/contacts", {"name": "Walked"}),
        ]
        for n in range(requests):
            method, path, body = steps[n % len(steps)]
            r = client.request(method, path, json=body)
            if r.status_code >= 400:
                raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:200]}")


def measure(work: Path, env: dict[str, str], redis_url: str | None, limits: str,
            token: str, requests: int) -> float:
    """Server CPU seconds per request of one walk (after a warm-up walk)."""
    server, port = start_service(
        "inbox-ratelimits", work, database_url=env["INBOX_DATABASE_URL"], redis_url=redis_url,
        secret_key=SECRET_KEY, cpus=None,
        extra_env={"INBOX_SECRETS_KEY": env["INBOX_SECRETS_KEY"], "INBOX_LOG_LEVEL": "warning",
                   "INBOX_RATE_LIMITS": limits},
    )
    try:
        base = f"http://{HOST}:{port}"
        walk(base, token, 200)
        before = process_cpu_seconds(server.pid)
        walk(base, token, requests)
        return (process_cpu_seconds(server.pid) - before) / requests
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ratelimits", description=__doc__)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", choices=("memory", "redis", "both"), default="both")
    args = p.parse_args(argv)

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
            off, on = [], []
            for _ in range(args.rounds):
                off.append(measure(work, env, url, "off", token, args.requests))
                on.append(measure(work, env, url, HIGH, token, args.requests))
            off_ms, on_ms = statistics.median(off) * 1000, statistics.median(on) * 1000
            results[backend] = {
                "cpu_ms_per_request_off": round(off_ms, 3),
                "cpu_ms_per_request_on": round(on_ms, 3),
                "difference_percent": round((on_ms - off_ms) / off_ms * 100, 1),
                "runs_off_ms": [round(v * 1000, 3) for v in off],
                "runs_on_ms": [round(v * 1000, 3) for v in on],
            }
    finally:
        if redis is not None:
            redis.stop()
    print(json.dumps({"requests": args.requests, "rounds": args.rounds, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
