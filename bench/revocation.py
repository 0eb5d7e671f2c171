"""`python -m bench.revocation`: how long a revoked credential's socket stays open on
another process.

Starts two `inbox serve` processes on a fresh PostgreSQL database and one Redis. For
each kind of revocation a socket is opened on process B with the credential, the
revocation is made through process A, and the time from the request to A until B
closes the socket is measured, `--rounds` times. Then Redis is stopped and the same is
measured again: nothing crosses the broker, so only what each process reads from the
database can close the socket. A ticket's session is measured against the token it
was minted from: the time from the token's expiry until the socket closes.

A socket still open `--wait` seconds after the revocation counts as never closed. A
revocation the service does not offer (an older tree) is reported as such.

    .venv/bin/python -m bench.revocation                              # this tree
    .venv/bin/python -m bench.revocation --checkout /tmp/old          # another tree
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .environment import Environment, Options, ServerGroup
from .servers import HOST, Process, free_port, wait_for_port

PASSWORD = "bench-password-1"


@dataclass
class Samples:
    """Seconds until the socket closed, per round; None: still open after the wait."""

    seconds: list[float | None] = field(default_factory=list)
    unsupported: str | None = None
    close_codes: set[int | None] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        if self.unsupported is not None:
            return {"unsupported": self.unsupported}
        closed = sorted(s for s in self.seconds if s is not None)
        result: dict[str, Any] = {
            "rounds": len(self.seconds),
            "never_closed": len(self.seconds) - len(closed),
            "close_codes": sorted(c for c in self.close_codes if c is not None),
        }
        if closed:
            result.update(
                median_ms=round(statistics.median(closed) * 1000, 1),
                p95_ms=round(closed[max(0, round(0.95 * len(closed)) - 1)] * 1000, 1),
                max_ms=round(closed[-1] * 1000, 1),
            )
        return result


class Unsupported(Exception):
    pass


@dataclass
class Cluster:
    a: str
    b: str
    secret_key: str
    owner_token: str
    org_id: int
    http: httpx.AsyncClient

    def ws(self, base: str) -> str:
        return "ws" + base.removeprefix("http") + "/ws"

    async def call(
        self, method: str, base: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.owner_token}"}
        return await self.http.request(method, f"{base}{path}", headers=headers, **kw)

    async def user(self, role: str = "agent") -> tuple[int, str]:
        """A new user and an access token of theirs."""
        email = f"{role}-{secrets.token_hex(4)}@bench.example"
        r = await self.call("POST", self.a, "/api/users",
                            json={"email": email, "password": PASSWORD, "role": role})
        r.raise_for_status()
        r2 = await self.http.post(f"{self.a}/api/auth/login",
                                  json={"email": email, "password": PASSWORD})
        r2.raise_for_status()
        return int(r.json()["id"]), str(r2.json()["access_token"])

    async def key(self, token: str | None = None) -> tuple[int, str]:
        r = await self.call("POST", self.a, "/api/api-keys", token, json={"name": "bench"})
        r.raise_for_status()
        return int(r.json()["id"]), str(r.json()["key"])


async def _open(url: str, credential: str | None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    ws = await connect(url, additional_headers=headers, compression=None, open_timeout=10,
                       max_queue=None)
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["type"] == "session.ready", first
    return ws


async def _closed_within(ws: ClientConnection, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False


Revoke = Callable[[], Awaitable[None]]
# Sets a revocation up: (the credential a socket is opened with, the call that revokes it).
Revocation = Callable[[Cluster], Awaitable[tuple[str, Revoke]]]


async def deactivate_user(c: Cluster) -> tuple[str, Revoke]:
    user_id, token = await c.user()
    return token, lambda: _check_call(c, "POST", f"/api/users/{user_id}/deactivate")


async def reset_password(c: Cluster) -> tuple[str, Revoke]:
    user_id, token = await c.user()
    return token, lambda: _check_call(c, "PATCH", f"/api/users/{user_id}",
                                          json={"password": "another-password-1"})


async def sign_out_everywhere(c: Cluster) -> tuple[str, Revoke]:
    user_id, token = await c.user()
    return token, lambda: _check_call(c, "POST", f"/api/users/{user_id}/logout-all")


async def delete_key(c: Cluster) -> tuple[str, Revoke]:
    key_id, key = await c.key()
    return key, lambda: _check_call(c, "DELETE", f"/api/api-keys/{key_id}")


async def deactivate_key_owner(c: Cluster) -> tuple[str, Revoke]:
    admin_id, admin_token = await c.user("admin")
    _, key = await c.key(admin_token)
    return key, lambda: _check_call(c, "POST", f"/api/users/{admin_id}/deactivate")


async def _check_call(c: Cluster, method: str, path: str, **kw: Any) -> None:
    r = await c.call(method, c.a, path, **kw)
    if r.status_code in (404, 405):
        raise Unsupported(f"{method} {path} answers {r.status_code}")
    r.raise_for_status()


REVOCATIONS: dict[str, Revocation] = {
    "deactivate the user": deactivate_user,
    "reset the user's password": reset_password,
    "sign the user out everywhere": sign_out_everywhere,
    "delete the API key": delete_key,
    "deactivate the API key's owner": deactivate_key_owner,
}


async def _measure(c: Cluster, revocation: Revocation, rounds: int, wait: float) -> Samples:
    samples = Samples()
    for _ in range(rounds):
        credential, revoke = await revocation(c)
        ws = await _open(c.ws(c.b), credential)
        try:
            started = time.perf_counter()
            try:
                await revoke()
            except Unsupported as exc:
                samples.unsupported = str(exc)
                return samples
            closed = await _closed_within(ws, wait)
            samples.seconds.append(time.perf_counter() - started if closed else None)
            samples.close_codes.add(ws.close_code if closed else None)
        finally:
            await ws.close()
    return samples


def _short_token(c: Cluster, user_id: int, seconds: float) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    # A token's exp counts whole seconds: the moment it names is the one to measure from.
    expires = datetime.fromtimestamp(int((now + timedelta(seconds=seconds)).timestamp()), UTC)
    claims = {"sub": str(user_id), "org": c.org_id, "role": "agent", "epoch": 0,
              "iat": now, "exp": expires}
    return jwt.encode(claims, c.secret_key, algorithm="HS256"), expires


async def _ticket_outlives_token(c: Cluster, rounds: int, wait: float, life: float) -> Samples:
    """Seconds from the token's expiry until the ticket's socket closes."""
    samples = Samples()
    for _ in range(rounds):
        user_id, _ = await c.user()
        token, expires = _short_token(c, user_id, life)
        r = await c.call("POST", c.a, "/api/realtime/tickets", token)
        r.raise_for_status()
        ws = await _open(c.ws(c.b) + f"?ticket={r.json()['ticket']}", None)
        try:
            lapse = (expires - datetime.now(UTC)).total_seconds()
            closed = await _closed_within(ws, lapse + wait)
            after = (datetime.now(UTC) - expires).total_seconds()
            samples.seconds.append(after if closed else None)
            samples.close_codes.add(ws.close_code if closed else None)
        finally:
            await ws.close()
    return samples


class OwnRedis:
    """A redis-server on a fixed port, so it can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.port = free_port()
        self.workdir = workdir
        self.command = [binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                        "--appendonly", "no", "--dir", str(workdir)]
        self.process: Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        self.process = Process(f"redis-{self.starts}", self.command, self.workdir)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


async def _run(group: ServerGroup, secret_key: str, redis: OwnRedis,
               args: argparse.Namespace) -> dict[str, Any]:
    a, b = (f"http://{HOST}:{port}" for port in group.ports)
    async with httpx.AsyncClient(timeout=30) as http:
        token = group.credentials.token
        me = (await http.get(f"{a}/api/auth/me",
                             headers={"Authorization": f"Bearer {token}"})).json()
        c = Cluster(a, b, secret_key, token, int(me["organization"]["id"]), http)
        results: dict[str, Any] = {"redis up": {}, "redis down": {}}
        for name, revocation in REVOCATIONS.items():
            samples = await _measure(c, revocation, args.rounds, args.wait)
            results["redis up"][name] = samples.summary()
            print(f"redis up, {name}: {results['redis up'][name]}", file=sys.stderr)
        ticket = await _ticket_outlives_token(c, args.ticket_rounds, args.wait, args.token_life)
        results["ticket session after its token expired"] = ticket.summary()
        print(f"ticket: {results['ticket session after its token expired']}", file=sys.stderr)

        redis.stop()
        await asyncio.sleep(1)
        for name, revocation in REVOCATIONS.items():
            samples = await _measure(c, revocation, args.down_rounds, args.wait)
            results["redis down"][name] = samples.summary()
            print(f"redis down, {name}: {results['redis down'][name]}", file=sys.stderr)
        redis.start()
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.revocation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20,
                   help="revocations of each kind with Redis up (default 20)")
    p.add_argument("--down-rounds", type=int, default=5,
                   help="revocations of each kind with Redis down (default 5)")
    p.add_argument("--ticket-rounds", type=int, default=3)
    p.add_argument("--token-life", type=float, default=3.0,
                   help="seconds the token behind a ticket lives (default 3)")
    p.add_argument("--wait", type=float, default=10.0,
                   help="seconds a socket may stay open before it counts as never closed")
    p.add_argument("--checkout", type=Path,
                   help="run the fixtures and the services from this source tree")
    p.add_argument("--postgres-url", default=os.environ.get("INBOX_BENCH_POSTGRES_URL"),
                   help="a PostgreSQL server where databases may be created and dropped "
                   "(default: $INBOX_BENCH_POSTGRES_URL, else a throwaway cluster)")
    p.add_argument("--out", type=Path, help="also write the result as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.ExitStack() as stack:
        redis_dir = Path(tempfile.mkdtemp(prefix="inbox-bench-redis-"))
        stack.callback(shutil.rmtree, redis_dir, True)
        redis = OwnRedis(redis_dir)
        redis.start()
        stack.callback(redis.stop)
        options = Options(server_cpus=None, loadgen_cpus=None, reference=False,
                          postgres_url=args.postgres_url, redis_url=redis.url)
        env = Environment(options, stack, {"INBOX_LOG_LEVEL": "warning"}, args.checkout)
        with env.service("postgres", redis=True, count=2) as group:
            results = asyncio.run(_run(group, env.secret_key, redis, args))
            group.check_alive()
    result = {"checkout": str(args.checkout) if args.checkout else "this tree",
              "wait_seconds": args.wait, **results}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
