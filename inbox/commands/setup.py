"""Setting up an organization: its users, keys, tokens, channels, or a demo one."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

from ..settings import Settings
from .database import prepare, run
from .output import CliError, emit

MIN_PASSWORD_LENGTH = 8


def cmd_create_org(args: argparse.Namespace, settings: Settings) -> int:
    from ..services.accounts import create_organization

    async def work(db: Any) -> int:
        org = await create_organization(db, args.name)
        emit(args, {"id": org.id, "name": org.name}, f"created organization {org.id}: {org.name}")
        return 0

    prepare(args, settings)
    return run(settings, work)


def cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    from ..services.accounts import create_user

    email = args.email.strip()
    # A name shows wherever the user acts (assignees, replies); "" would show nothing.
    name = args.name if args.name is not None else email.partition("@")[0]

    async def work(db: Any) -> int:
        user = await create_user(
            db, args.org, email=email, password=args.password, role=args.role, name=name
        )
        emit(
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

    prepare(args, settings)
    return run(settings, work)


def cmd_create_api_key(args: argparse.Namespace, settings: Settings) -> int:
    from ..services.accounts import create_api_key

    async def work(db: Any) -> int:
        row, key = await create_api_key(
            db, args.org, name=args.name, role=args.role, scopes=args.scopes
        )
        emit(
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

    prepare(args, settings)
    return run(settings, work)


def parse_scopes(value: str) -> list[str]:
    from ..auth import SCOPES

    scopes = sorted({s.strip() for s in value.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise argparse.ArgumentTypeError(f"expected api, ingest or api,ingest; got {value!r}")
    return scopes


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from ..security import issue_token
    from ..services.logins import user_by_email

    async def work(db: Any) -> int:
        user = await user_by_email(db, args.email.strip())
        if user is None or not user.is_active:
            print(f"error: no active user with email {args.email}", file=sys.stderr)
            return 1
        assert user.id is not None
        ttl = args.ttl or settings.access_token_ttl
        token = issue_token(
            user_id=user.id,
            organization_id=user.organization_id,
            role=user.role,
            key=settings.signing_key,
            ttl_seconds=ttl,
            session_epoch=user.session_epoch,
        )
        emit(args, {"id": user.id, "access_token": token, "expires_in": ttl}, token)
        return 0

    prepare(args, settings, writes=False)
    return run(settings, work)


def cmd_create_channel(args: argparse.Namespace, settings: Settings) -> int:
    from ..services.channel_secrets import ChannelSecrets
    from ..services.channels import create_channel, parse_settings
    from ..views import channel_public

    values: dict[str, str] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set expects key=value, got {item!r}", file=sys.stderr)
            return 2
        values[key.strip()] = value
    parsed = parse_settings(args.kind, values)

    async def work(db: Any) -> int:
        channel = await create_channel(
            db,
            ChannelSecrets.from_settings(settings),
            args.org,
            kind=args.kind,
            name=args.name,
            settings=parsed,
        )
        emit(
            args,
            channel_public(channel).model_dump(mode="json"),
            f"created {channel.kind} channel {channel.id}: {channel.name}",
        )
        return 0

    prepare(args, settings)
    return run(settings, work)


def cmd_reset_password(args: argparse.Namespace, settings: Settings) -> int:
    from ..services.logins import set_password

    if args.password is not None and len(args.password) < MIN_PASSWORD_LENGTH:
        # The API's rule for a new password: the command line is no back door around it.
        raise CliError(f"--password must have at least {MIN_PASSWORD_LENGTH} characters", 2)
    generated = args.password is None
    password = secrets.token_urlsafe(12) if generated else args.password

    async def work(db: Any) -> int:
        user = await set_password(db, args.email.strip(), password)
        if user is None:
            raise CliError(f"no user with email {args.email.strip()}")
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
        emit(args, data, text)
        return 0

    prepare(args, settings)
    return run(settings, work)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from ..demo import seed_demo
    from ..services.channel_secrets import ChannelSecrets

    live = bool(getattr(args, "live", False))
    rate: float = getattr(args, "rate", 0.5)
    count: int | None = getattr(args, "count", None)
    url: str | None = getattr(args, "url", None)
    if not live and (count is not None or url is not None or rate != 0.5):
        raise CliError("--rate, --count and --url go with --live")
    if not 0 < rate <= 50:
        raise CliError("--rate: between 0 and 50 messages a second")
    if count is not None and count < 1:
        raise CliError("--count: at least 1")
    base = (url or settings.public_url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise CliError(f"--url: an http:// or https:// address, not {base!r}")
    secrets_ = ChannelSecrets.from_settings(settings)
    # The live sender, for Ctrl-C to say how many messages it sent.
    running: list[Any] = []

    async def work(db: Any) -> int:
        result = {"url": f"{base}/", **await seed_demo(db, secrets_)}
        emit(args, result, "\n".join(f"{k}: {v}" for k, v in result.items()))
        if live:
            await _live(args, db, secrets_, base, rate, count, running)
        return 0

    prepare(args, settings)
    try:
        return run(settings, work)
    except KeyboardInterrupt:
        # Ctrl-C is how a live demo ends.
        sent = running[0].sent if running else 0
        print(f"stopped: {sent} messages sent", file=sys.stderr)
        return 0


async def _live(
    args: argparse.Namespace,
    db: Any,
    channel_secrets: Any,
    base: str,
    rate: float,
    count: int | None,
    running: list[Any],
) -> None:
    import logging

    from ..demo.live import LiveDemo, LiveDemoError, load_demo

    # A line per request would drown the line per message this prints.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def say(line: str) -> None:
        # Under --json stdout holds one object; the running commentary goes aside.
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    try:
        channels, customers = await load_demo(db, channel_secrets)
        demo = LiveDemo(base, channels, customers)
        running.append(demo)
        say(f"sending {rate:g} messages a second to {base} (Ctrl-C stops)")
        await demo.run(rate, count, say)
    except LiveDemoError as exc:
        raise CliError(str(exc)) from None
