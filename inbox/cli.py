"""The ``inbox`` command: its parser, `serve`, and the entry point; the other commands
live in inbox/commands/, by what they work on."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

from .commands.analytics import cmd_rebuild_analytics
from .commands.channel_secrets import cmd_secrets_new_key, cmd_secrets_rotate
from .commands.database import cmd_migrate, prepare, run
from .commands.output import CliError, command_name
from .commands.setup import (
    cmd_create_api_key,
    cmd_create_channel,
    cmd_create_org,
    cmd_create_user,
    cmd_demo,
    cmd_reset_password,
    cmd_token,
    parse_scopes,
)
from .commands.templates import cmd_sync_templates
from .commands.webhook_log import cmd_webhooks_list, cmd_webhooks_replay
from .errors import ApiError
from .settings import ConfigError, Settings, load_settings, with_development_key


def _listen_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, found before it starts."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
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

    from .telemetry.logs import uvicorn_log_config
    from .web.connection_bounds import ConnectionLimits, fit_descriptor_limit, server_options
    from .web.head_meter import HeadLimits

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
    prepare(args, settings, creates=True)
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
    fit_descriptor_limit(settings.max_connections)
    if args.workers > 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from .telemetry.workers import prepare_multiprocess_dir

        # Before any worker starts: each chooses how to keep its figures on import.
        prepare_multiprocess_dir()
    uvicorn.run(
        "inbox.process:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings.log_format),
        # Our own access log redacts tokens from query strings; uvicorn's would not.
        access_log=False,
        proxy_headers=True,
        # The peers whose X-Forwarded-For/-Proto are believed: the ones the rate limits
        # believe (uvicorn would otherwise read FORWARDED_ALLOW_IPS, 127.0.0.1 by default).
        forwarded_allow_ips=settings.trusted_proxies,
        # A little above the endpoint's 64 KiB limit, so it answers 1009 itself without
        # uvicorn buffering frames up to its 16 MiB default first.
        ws_max_size=64 * 1024 + 1024,
        # Compression costs more CPU and memory per connection than it saves here.
        ws_per_message_deflate=False,
        # Protocol-level pings: a peer that stops answering is dropped.
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_timeout,
        # uvicorn's httptools parser takes headers without limit: the head is counted,
        # and refused with 431, before the parser sees it; slow requests are closed and
        # connections past INBOX_MAX_CONNECTIONS refused (see web/connection_bounds).
        **server_options(
            HeadLimits(max_bytes=settings.max_header_bytes, max_headers=settings.max_headers),
            ConnectionLimits(
                header_timeout=settings.header_timeout,
                body_timeout=settings.body_timeout,
                max_connections=settings.max_connections,
            ),
        ),
    )
    return 0


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _hint_first_user(settings: Settings) -> None:
    from .services.logins import count_users

    if run(settings, count_users) == 0:
        inbox = command_name()
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
        run(settings, check)
    except SecretsKeyError as exc:
        raise CliError(exc.message) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inbox", description="Unified Inbox service")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Any, help: str, *, creates: bool = False, keyed: bool = False
    ) -> argparse.ArgumentParser:
        """``keyed``: the command signs or encrypts, so it needs the signing key."""
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler, keyed=keyed)
        p.add_argument("--json", action="store_true", help="print a JSON object")
        if creates:
            p.add_argument(
                "--create",
                action="store_true",
                help="create the SQLite database file if it does not exist",
            )
        return p

    p = command("serve", cmd_serve, "run the HTTP and WebSocket server", keyed=True)
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
    p.add_argument("--role", choices=["owner", "admin", "agent", "viewer"], default="agent")
    p = command(
        "create-api-key", cmd_create_api_key, "create an API key (printed once)", creates=True
    )
    p.add_argument("--org", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=["viewer", "agent", "admin"], default="agent")
    p.add_argument(
        "--scopes",
        type=parse_scopes,
        default=["api"],
        help="comma-separated: api (REST and /ws, the default), ingest (the generic webhook)",
    )
    p = command(
        "analytics-rebuild",
        cmd_rebuild_analytics,
        "recompute the analytics' message rollups from the stored messages",
    )
    p.add_argument("--org", type=int, help="only this organization (default: every one)")
    p = command("token", cmd_token, "print an access token for a user", keyed=True)
    p.add_argument("--email", required=True)
    p.add_argument("--ttl", type=int, help="lifetime in seconds")
    p = command(
        "create-channel",
        cmd_create_channel,
        "connect a messaging channel",
        creates=True,
        keyed=True,
    )
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
    rotate.set_defaults(handler=cmd_secrets_rotate, keyed=True)
    rotate.add_argument("--json", action="store_true", help="print a JSON object")
    new_key = actions.add_parser("new-key", help="print a new key for INBOX_SECRETS_KEY")
    # Needs no configuration: it makes what production's is missing.
    new_key.set_defaults(handler=cmd_secrets_new_key, needs_settings=False)
    new_key.add_argument("--json", action="store_true", help="print a JSON object")
    p = sub.add_parser(
        "channels",
        help="messaging channels",
        description="Work on the connected messaging channels.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = actions.add_parser(
        "sync-templates",
        help="read the WhatsApp message templates of a channel (default: every active "
        "WhatsApp channel) from its Business Account",
    )
    sync.set_defaults(handler=cmd_sync_templates, keyed=True)
    sync.add_argument("channel", nargs="?", type=int, metavar="CHANNEL", help="a channel id")
    sync.add_argument("--json", action="store_true", help="print a JSON object")
    p = sub.add_parser(
        "webhooks",
        help="webhook requests received (INBOX_WEBHOOK_ARCHIVE_DAYS)",
        description="The archive of webhook requests, of every organization and of none.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listed = actions.add_parser("list", help="the newest records")
    listed.set_defaults(handler=cmd_webhooks_list)
    listed.add_argument("--outcome", help="only records with this outcome")
    listed.add_argument("--limit", type=int, default=50)
    listed.add_argument("--json", action="store_true", help="print a JSON object")
    replayed = actions.add_parser(
        "replay",
        help="run recorded requests again through today's code and channels "
        "(a delivery already stored stores nothing new)",
    )
    replayed.set_defaults(handler=cmd_webhooks_replay, keyed=True)
    replayed.add_argument("ids", nargs="+", type=int, metavar="ID", help="record ids")
    replayed.add_argument("--json", action="store_true", help="print a JSON object")
    p = command(
        "demo",
        cmd_demo,
        "seed a demo organization with users and conversations (run again: new passwords)",
        creates=True,
        keyed=True,
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="then keep sending signed webhooks from its customers to a running service",
    )
    p.add_argument(
        "--rate", type=float, default=0.5, help="--live: messages a second (default 0.5)"
    )
    p.add_argument("--count", type=int, help="--live: stop after this many messages")
    p.add_argument(
        "--url", help="--live: the service (default INBOX_PUBLIC_URL or http://127.0.0.1:8000)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "needs_settings", True):
        return int(args.handler(args, None))
    try:
        settings = load_settings()
        if getattr(args, "keyed", False):
            settings = with_development_key(settings)
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
