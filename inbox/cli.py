"""The ``inbox`` command: serve, migrate, and set up organizations, users and keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ApiError
from .settings import ConfigError, Settings, load_settings


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if args.json else text)


def _run(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from . import migrate
    from .db import Database

    # The embedded default needs no set-up step, as `serve` promises; PostgreSQL is
    # migrated deliberately, so say so instead of failing on a missing table.
    if migrate.is_current(settings.database_url):
        pass
    elif settings.is_sqlite:
        migrate.upgrade(settings.database_url)
    else:
        print("error: the database schema is not up to date: run `inbox migrate`", file=sys.stderr)
        return 1

    async def main() -> int:
        db = Database(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from . import migrate

    migrate.upgrade(settings.database_url)
    print("database is at the newest schema")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from . import migrate

    if args.workers > 1 and not settings.redis_url:
        # Each worker is a process with its own in-memory broker: WebSockets held by one
        # would never hear of events caused through another.
        print(
            "error: --workers > 1 needs INBOX_REDIS_URL (the in-memory broker is per process)",
            file=sys.stderr,
        )
        return 2
    if settings.is_sqlite:
        migrate.upgrade(settings.database_url)
    elif not migrate.is_current(settings.database_url):
        print("error: the database schema is not up to date: run `inbox migrate`", file=sys.stderr)
        return 1
    _hint_first_user(settings)
    settings.signing_key  # noqa: B018 - resolve (and warn about) the key once, before workers
    uvicorn.run(
        "inbox.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        log_level=settings.log_level,
        # Our own access log redacts tokens from query strings; uvicorn's would not.
        access_log=False,
        proxy_headers=True,
        # A little above the endpoint's 64 KiB limit, so it answers 1009 itself without
        # uvicorn buffering frames up to its 16 MiB default first.
        ws_max_size=64 * 1024 + 1024,
        # Compression costs more CPU and memory per connection than it saves here.
        ws_per_message_deflate=False,
        # Protocol-level pings: a peer that stops answering is dropped.
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=10,
    )
    return 0


def _hint_first_user(settings: Settings) -> None:
    from sqlmodel import func, select

    from .models import User

    async def count_users(db: Any) -> int:
        async with db.session() as session:
            return int((await session.exec(select(func.count()).select_from(User))).one())

    if _run(settings, count_users) == 0:
        print(
            "No users yet. Create the first one:\n"
            "  inbox create-org --name 'Acme'\n"
            "  inbox create-user --org 1 --email you@example.com --password '...' --role owner\n"
            "or seed a demo organization with `inbox demo`.",
            file=sys.stderr,
        )


def cmd_create_org(args: argparse.Namespace, settings: Settings) -> int:
    from .services.accounts import create_organization

    async def work(db: Any) -> int:
        org = await create_organization(db, args.name)
        _print(args, {"id": org.id, "name": org.name}, f"created organization {org.id}: {org.name}")
        return 0

    return _run(settings, work)


def cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    from .services.accounts import create_user

    async def work(db: Any) -> int:
        user = await create_user(
            db, args.org, email=args.email, password=args.password, role=args.role, name=args.name
        )
        _print(
            args,
            {
                "id": user.id,
                "organization_id": user.organization_id,
                "email": user.email,
                "role": user.role,
            },
            f"created {user.role} {user.id}: {user.email}",
        )
        return 0

    return _run(settings, work)


def cmd_create_api_key(args: argparse.Namespace, settings: Settings) -> int:
    from .services.accounts import create_api_key

    async def work(db: Any) -> int:
        row, key = await create_api_key(db, args.org, name=args.name, role=args.role)
        _print(
            args,
            {
                "id": row.id,
                "organization_id": row.organization_id,
                "name": row.name,
                "prefix": row.prefix,
                "role": row.role,
                "key": key,
            },
            f"created API key {row.id} ({row.prefix}...). Store it now, it is not shown again:\n"
            f"{key}",
        )
        return 0

    return _run(settings, work)


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import func, select

    from .models import User
    from .security import issue_token

    async def work(db: Any) -> int:
        async with db.session() as session:
            email = args.email.strip().lower()
            user = (await session.exec(select(User).where(func.lower(User.email) == email))).first()
        if user is None or not user.is_active:
            print(f"error: no active user with email {args.email}", file=sys.stderr)
            return 1
        ttl = args.ttl or settings.access_token_ttl
        token = issue_token(
            user_id=user.id,
            organization_id=user.organization_id,
            role=user.role,
            key=settings.signing_key,
            ttl_seconds=ttl,
        )
        _print(args, {"id": user.id, "access_token": token, "expires_in": ttl}, token)
        return 0

    return _run(settings, work)


def cmd_create_channel(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import IntegrityError

    from .api.channels import channel_public, parse_settings
    from .errors import Conflict, NotFound
    from .models import Channel, Organization

    values: dict[str, str] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set expects key=value, got {item!r}", file=sys.stderr)
            return 2
        values[key.strip()] = value
    parsed = parse_settings(args.kind, values)

    async def work(db: Any) -> int:
        channel = Channel(
            organization_id=args.org,
            kind=args.kind,
            name=args.name,
            routing_key=parsed.routing_key(),
            settings=parsed.stored(),
        )
        async with db.session() as session:
            if await session.get(Organization, args.org) is None:
                raise NotFound(f"Organization {args.org} not found")
            session.add(channel)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    f"another {args.kind} channel already uses {channel.routing_key!r}"
                ) from None
        public = channel_public(channel)
        _print(
            args,
            public.model_dump(mode="json"),
            f"created {channel.kind} channel {channel.id}: {channel.name}",
        )
        return 0

    return _run(settings, work)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from . import migrate
    from .demo import seed_demo

    if settings.is_sqlite:
        migrate.upgrade(settings.database_url)

    async def work(db: Any) -> int:
        result = await seed_demo(db)
        _print(args, result, "\n".join(f"{k}: {v}" for k, v in result.items()))
        return 0

    return _run(settings, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inbox", description="Unified Inbox service")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help="print a JSON object")
        return p

    p = command("serve", cmd_serve, "run the HTTP and WebSocket server")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1)
    command("migrate", cmd_migrate, "upgrade the database to the newest schema")
    p = command("create-org", cmd_create_org, "create an organization")
    p.add_argument("--name", required=True)
    p = command("create-user", cmd_create_user, "create a user in an organization")
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--role", choices=["owner", "admin", "agent"], default="agent")
    p = command("create-api-key", cmd_create_api_key, "create an API key (printed once)")
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=["agent", "admin"], default="agent")
    p = command("token", cmd_token, "print an access token for a user")
    p.add_argument("--email", required=True)
    p.add_argument("--ttl", type=int, help="lifetime in seconds")
    p = command("create-channel", cmd_create_channel, "connect a messaging channel")
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--kind", choices=["whatsapp", "instagram", "sms", "generic"], required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting, repeatable")
    command("demo", cmd_demo, "seed a demo organization with users and conversations")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command != "migrate":
        # Alembic narrates every schema check; only `inbox migrate` is about migrating.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.handler(args, settings))
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for field in exc.details.get("fields", []):
            print(f"  {field['field']}: {field['message']}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
