"""The ``inbox`` command: serve, migrate, and set up organizations, users and keys."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from .errors import ApiError
from .settings import ConfigError, Settings, _variable_name, load_settings

DATABASE_VARIABLE = "INBOX_DATABASE_URL"
POSTGRES_DEFAULT_PORT = 5432
MIN_PASSWORD_LENGTH = 8


class CliError(Exception):
    """A failure the user can act on: printed as one line, the command exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if args.json else text)


def _command() -> str:
    """This command as the user can type it from here, for hints meant to be pasted."""
    argv0 = sys.argv[0]
    name = os.path.basename(argv0)
    script = os.path.abspath(argv0)
    if name.endswith(".py") or not os.access(script, os.X_OK):
        # Run as `python -m ...` or from within another program: no path to show.
        return "inbox"
    try:
        found = shutil.which(name)
        if found is not None and os.path.samefile(found, script):
            return name
    except OSError:
        pass
    relative = os.path.relpath(script)
    if relative.startswith(os.pardir + os.sep):
        return shlex.quote(script)
    return shlex.quote(relative if os.sep in relative else os.curdir + os.sep + relative)


def _database_variable() -> str:
    # Spelled as the user set it: DATABASE_URL on a PaaS, INBOX_DATABASE_URL otherwise.
    return _variable_name(DATABASE_VARIABLE)


def _sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL and in-memory databases."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database:
        return None
    if database == ":memory:" or database.startswith("file:"):
        return None
    return Path(os.path.abspath(database))


def _shown(url: str) -> str:
    """The database as people recognize it: a file's absolute path, or the URL with no
    password and the driver the user did not choose left out."""
    from sqlalchemy.engine import make_url

    path = _sqlite_path(url)
    if path is not None:
        return str(path)
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def _failure_reason(exc: BaseException, settings: Settings) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, TimeoutError):
        return (
            f"no answer within {settings.database_connect_timeout:g} s "
            "(INBOX_DATABASE_CONNECT_TIMEOUT)"
        )
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # The driver's own exception says it best (asyncpg's sits behind the adapter's).
        exc = exc.orig.__cause__ or exc.orig
    if isinstance(exc, OSError):
        if isinstance(exc, socket.gaierror) and exc.strerror:
            return exc.strerror
        if exc.errno is not None and exc.errno > 0:
            # asyncio's messages repeat the address; the system's name is enough.
            return os.strerror(exc.errno)
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _unreachable(exc: BaseException, settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    reason = _failure_reason(exc, settings)
    variable = _database_variable()
    if settings.is_sqlite:
        shown = _shown(settings.database_url)
        return f"{variable}: cannot open the SQLite database {shown}: {reason}"
    parsed = make_url(settings.database_url)
    host = parsed.host or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = parsed.port or POSTGRES_DEFAULT_PORT
    return f"{variable}: cannot connect to PostgreSQL at {host}:{port}: {reason}"


def _reach(settings: Settings) -> str | None:
    """Connect once, within the connect timeout; the database's schema revision."""
    from . import migrate

    try:
        return migrate.current_revision(
            settings.database_url, connect_timeout=settings.database_connect_timeout
        )
    except Exception as exc:
        # Whatever stops the first connection, the user needs the variable and the
        # address, not the driver's stack.
        raise CliError(_unreachable(exc, settings)) from None


def _upgrade(settings: Settings, revision: str | None) -> list[tuple[str, str]]:
    """Bring the schema from ``revision`` to the newest; the migrations applied."""
    from . import migrate

    pending = migrate.revisions_after(revision)
    if pending:
        migrate.upgrade(settings.database_url, connect_timeout=settings.database_connect_timeout)
    return pending


def _prepare(
    args: argparse.Namespace, settings: Settings, *, writes: bool = True, creates: bool = False
) -> None:
    """Before a command uses the database: say which one, refuse to make a stray one,
    reach it, and have its schema current."""
    from . import migrate

    path = _sqlite_path(settings.database_url)
    creates = creates or bool(getattr(args, "create", False))
    if path is not None and not path.exists() and not creates:
        # Opening a missing SQLite file creates it: run from another directory, a
        # command would quietly work on a new, empty database.
        variable = _database_variable()
        # Only commands that can make something of a new database offer --create.
        if hasattr(args, "create"):
            ways = f"run this from the service's directory, set {variable}, or pass --create"
        else:
            ways = f"run this from the service's directory or set {variable}"
        raise CliError(f"no database at {path}: {ways}")
    revision = _reach(settings)
    if writes:
        # After reaching it: a failure's one line names the database already.
        print(f"database: {_shown(settings.database_url)}", file=sys.stderr)
    if revision == migrate.head_revision():
        return
    if not settings.is_sqlite:
        # PostgreSQL is migrated deliberately (once per release), never as a side effect.
        raise CliError(f"the database schema is not up to date: run `{_command()} migrate`")
    # The embedded default needs no set-up step, as `serve` promises.
    _upgrade(settings, revision)


def _run(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from .db import Database

    async def main() -> int:
        db = Database(settings.database_url, connect_timeout=settings.database_connect_timeout)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from . import migrate

    # Creating the database is part of migrating it: no --create needed here.
    applied = _upgrade(settings, _reach(settings))
    head = migrate.head_revision()
    shown = _shown(settings.database_url)
    text = [f"applied {revision}: {doc}" for revision, doc in applied]
    text.append(f"database {shown} is at the newest schema (revision {head})")
    _print(
        args,
        {"database": shown, "revision": head, "applied": [revision for revision, _ in applied]},
        "\n".join(text),
    )
    return 0


def _listen_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, found before it starts."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"cannot listen on {shown}: {exc.strerror}"
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            # As the server binds: a port that the last run left in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return (
                        f"{shown} is in use; set INBOX_PORT (or PORT) or pass --port "
                        "to choose another"
                    )
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                return f"cannot listen on {shown}: {reason}"
    return None


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from .web.http_limits import HeadLimits, uvicorn_options

    if args.workers > 1 and not settings.redis_url:
        # Each worker is a process with its own in-memory broker: WebSockets held by one
        # would never hear of events caused through another.
        print(
            "error: --workers > 1 needs INBOX_REDIS_URL (the in-memory broker is per process)",
            file=sys.stderr,
        )
        return 2
    host = args.host or settings.host
    port = args.port or settings.port
    # Checked before anything else starts: uvicorn would only report a taken port
    # after the whole start-up, as a stack trace.
    problem = _listen_problem(host, port)
    if problem is not None:
        raise CliError(problem)
    # On a fresh machine serve is the first command run (`make run`): it makes the file.
    _prepare(args, settings, creates=True)
    _hint_first_user(settings)
    _check_secrets_key(settings)
    # The server reads the settings anew (here, and in each --workers process): handed
    # the key resolved here, it neither repeats the development-key warning nor races
    # other workers to create the key file.
    os.environ.setdefault("INBOX_SECRET_KEY", settings.signing_key)
    # uvicorn stops gracefully on SIGTERM and then raises it again, so that a stop asked
    # for ends as "killed by SIGTERM" (`make run` then reports Error 143). A stop asked
    # for is a clean exit: the signal's second raise lands here and exits with 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "inbox.process:create_served_app",
        factory=True,
        host=host,
        port=port,
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
        # uvicorn's httptools parser takes headers without limit: the head is counted,
        # and refused with 431, before the parser sees it.
        **uvicorn_options(
            HeadLimits(max_bytes=settings.max_header_bytes, max_headers=settings.max_headers)
        ),
    )
    return 0


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _hint_first_user(settings: Settings) -> None:
    from sqlmodel import func, select

    from .models import User

    async def count_users(db: Any) -> int:
        async with db.session() as session:
            return int((await session.exec(select(func.count()).select_from(User))).one())

    if _run(settings, count_users) == 0:
        inbox = _command()
        print(
            "No users yet. Create the first one:\n"
            f"  {inbox} create-org --name 'Acme'\n"
            f"  {inbox} create-user --org 1 --email you@example.com --password '...' "
            "--role owner\n"
            f"or seed a demo organization with `{inbox} demo`.",
            file=sys.stderr,
        )


def _check_secrets_key(settings: Settings) -> None:
    """Refuse to serve with a key that cannot read the stored channel secrets: every
    delivery to their channels would be answered 503 until it is fixed."""
    from .services.channel_secrets import ChannelSecrets, SecretsKeyError, check_key

    async def check(db: Any) -> int:
        await check_key(db, ChannelSecrets.from_settings(settings))
        return 0

    try:
        _run(settings, check)
    except SecretsKeyError as exc:
        raise CliError(exc.message) from None


def cmd_create_org(args: argparse.Namespace, settings: Settings) -> int:
    from .services.accounts import create_organization

    async def work(db: Any) -> int:
        org = await create_organization(db, args.name)
        _print(args, {"id": org.id, "name": org.name}, f"created organization {org.id}: {org.name}")
        return 0

    _prepare(args, settings)
    return _run(settings, work)


def cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    from .services.accounts import create_user

    email = args.email.strip()
    # A name shows wherever the user acts (assignees, replies); "" would show nothing.
    name = args.name if args.name is not None else email.partition("@")[0]

    async def work(db: Any) -> int:
        user = await create_user(
            db, args.org, email=email, password=args.password, role=args.role, name=name
        )
        _print(
            args,
            {
                "id": user.id,
                "organization_id": user.organization_id,
                "email": user.email,
                "name": user.name,
                "role": user.role,
            },
            f"created {user.role} {user.id}: {user.email} ({user.name})",
        )
        return 0

    _prepare(args, settings)
    return _run(settings, work)


def cmd_create_api_key(args: argparse.Namespace, settings: Settings) -> int:
    from .services.accounts import create_api_key

    async def work(db: Any) -> int:
        row, key = await create_api_key(
            db, args.org, name=args.name, role=args.role, scopes=args.scopes
        )
        _print(
            args,
            {
                "id": row.id,
                "organization_id": row.organization_id,
                "name": row.name,
                "prefix": row.prefix,
                "role": row.role,
                "scopes": args.scopes,
                "key": key,
            },
            f"created API key {row.id} ({row.prefix}...). Store it now, it is not shown again:\n"
            f"{key}",
        )
        return 0

    _prepare(args, settings)
    return _run(settings, work)


def _scopes(value: str) -> list[str]:
    from .auth import SCOPES

    scopes = sorted({s.strip() for s in value.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise argparse.ArgumentTypeError(f"expected api, ingest or api,ingest; got {value!r}")
    return scopes


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
            session_epoch=user.session_epoch,
        )
        _print(args, {"id": user.id, "access_token": token, "expires_in": ttl}, token)
        return 0

    _prepare(args, settings, writes=False)
    return _run(settings, work)


def cmd_create_channel(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import IntegrityError

    from .api.channels import channel_public, parse_settings
    from .errors import Conflict, NotFound
    from .models import Channel, Organization
    from .services.channel_secrets import ChannelSecrets

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
            settings=ChannelSecrets.from_settings(settings).seal(parsed),
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

    _prepare(args, settings)
    return _run(settings, work)


def cmd_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import func, select

    from .models import User, utcnow
    from .security import hash_password
    from .services.accounts import end_sessions

    if args.password is not None and len(args.password) < MIN_PASSWORD_LENGTH:
        # The API's rule for a new password: the command line is no back door around it.
        raise CliError(f"--password must have at least {MIN_PASSWORD_LENGTH} characters", 2)
    generated = args.password is None
    password = secrets.token_urlsafe(12) if generated else args.password
    email = args.email.strip().lower()

    async def work(db: Any) -> int:
        password_hash = await hash_password(password)
        async with db.session(write=True) as session:
            user = (await session.exec(select(User).where(func.lower(User.email) == email))).first()
            if user is None:
                raise CliError(f"no user with email {args.email.strip()}")
            user.password_hash = password_hash
            user.updated_at = utcnow()
            session.add(user)
            # Every session of the user ends: servers close their sockets within seconds.
            assert user.id is not None
            await end_sessions(session, user.id)
            await session.commit()
        if not user.is_active:
            print(
                f"note: {user.email} is deactivated: they cannot log in until an admin "
                "reactivates them",
                file=sys.stderr,
            )
        data: dict[str, Any] = {"id": user.id, "email": user.email}
        text = f"reset the password of {user.email} (user {user.id})"
        if generated:
            data["password"] = password
            text += f"\npassword: {password}"
        _print(args, data, text)
        return 0

    _prepare(args, settings)
    return _run(settings, work)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import seed_demo
    from .services.channel_secrets import ChannelSecrets

    async def work(db: Any) -> int:
        result = await seed_demo(db, ChannelSecrets.from_settings(settings))
        _print(args, result, "\n".join(f"{k}: {v}" for k, v in result.items()))
        return 0

    _prepare(args, settings)
    return _run(settings, work)


def cmd_secrets_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from .services.channel_secrets import SETTING, ChannelSecrets, rotate_all

    async def work(db: Any) -> int:
        done = await rotate_all(db, ChannelSecrets.from_settings(settings))
        text = (
            f"rewrote {done.rewritten} secrets of {done.channels} channels under the newest "
            f"key ({done.encrypted} were plaintext, {done.reencrypted} under an older key); "
            f"{done.current} already were"
        )
        _print(
            args,
            {
                "rewritten": done.rewritten,
                "channels": done.channels,
                "encrypted": done.encrypted,
                "reencrypted": done.reencrypted,
                "current": done.current,
                "failed_channels": done.failed,
            },
            text,
        )
        if done.failed:
            shown = ", ".join(map(str, done.failed))
            raise CliError(
                f"channels {shown}: their secrets decrypt with no key in {SETTING}; "
                "list the key they were encrypted with after the newest one and run this again"
            )
        return 0

    _prepare(args, settings)
    return _run(settings, work)


def cmd_secrets_new_key(args: argparse.Namespace, _settings: Settings | None) -> int:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    _print(args, {"key": key}, key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inbox", description="Unified Inbox service")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Any, help: str, *, creates: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        p.add_argument("--json", action="store_true", help="print a JSON object")
        if creates:
            p.add_argument(
                "--create",
                action="store_true",
                help="create the SQLite database file if it does not exist",
            )
        return p

    p = command("serve", cmd_serve, "run the HTTP and WebSocket server")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1)
    command("migrate", cmd_migrate, "upgrade the database to the newest schema")
    p = command("create-org", cmd_create_org, "create an organization", creates=True)
    p.add_argument("--name", required=True)
    p = command("create-user", cmd_create_user, "create a user in an organization", creates=True)
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--name", help="display name (default: the part of the email before @)")
    p.add_argument("--role", choices=["owner", "admin", "agent"], default="agent")
    p = command(
        "create-api-key", cmd_create_api_key, "create an API key (printed once)", creates=True
    )
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=["agent", "admin"], default="agent")
    p.add_argument(
        "--scopes",
        type=_scopes,
        default=["api"],
        help="comma-separated: api (REST and /ws, the default), ingest (the generic webhook)",
    )
    p = command("token", cmd_token, "print an access token for a user")
    p.add_argument("--email", required=True)
    p.add_argument("--ttl", type=int, help="lifetime in seconds")
    p = command("create-channel", cmd_create_channel, "connect a messaging channel", creates=True)
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--kind", choices=["whatsapp", "instagram", "sms", "generic"], required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting, repeatable")
    p = command(
        "reset-password",
        cmd_reset_password,
        "set a user's password (a generated one is printed when --password is omitted)",
    )
    p.add_argument("--email", required=True)
    p.add_argument("--password")
    p = sub.add_parser(
        "secrets",
        help="channel secrets at rest (INBOX_SECRETS_KEY)",
        description="Channel secrets are stored encrypted with the first key of "
        "INBOX_SECRETS_KEY (comma-separated, newest first); the others still decrypt.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = actions.add_parser(
        "rotate",
        help="re-encrypt every stored channel secret under the newest key (plaintext too); "
        "prints how many it rewrote",
    )
    rotate.set_defaults(handler=cmd_secrets_rotate)
    rotate.add_argument("--json", action="store_true", help="print a JSON object")
    new_key = actions.add_parser("new-key", help="print a new key for INBOX_SECRETS_KEY")
    # Needs no configuration: it makes what production's is missing.
    new_key.set_defaults(handler=cmd_secrets_new_key, needs_settings=False)
    new_key.add_argument("--json", action="store_true", help="print a JSON object")
    command(
        "demo",
        cmd_demo,
        "seed a demo organization with users and conversations (run again: new passwords)",
        creates=True,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "needs_settings", True):
        return int(args.handler(args, None))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.log_level != "debug":
        # Alembic narrates every schema check and plugin it sets up; `inbox migrate`
        # prints its own summary instead.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.handler(args, settings))
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for field in exc.details.get("fields", []):
            print(f"  {field['field']}: {field['message']}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
