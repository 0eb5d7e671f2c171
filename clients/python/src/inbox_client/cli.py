"""`inbox-client tail`: the inbox's events as JSON lines, resuming across restarts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from .client import InboxClient
from .errors import InboxError, ReplayTruncated

log = logging.getLogger("inbox_client")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inbox-client")
    commands = parser.add_subparsers(dest="command", required=True)
    tail = commands.add_parser(
        "tail",
        help="print the organization's events as JSON lines, one per line, as they happen",
        description="Print events as JSON lines. With --state, the id of the last event "
        "printed is kept in FILE and the next run carries on after it: an event may be "
        "printed again after a crash, never skipped.",
    )
    tail.add_argument("--url", required=True, help="the service, e.g. https://inbox.example")
    tail.add_argument(
        "--api-key",
        default=os.environ.get("INBOX_API_KEY"),
        help="an API key with the api scope (default: $INBOX_API_KEY)",
    )
    tail.add_argument("--events", help="comma-separated event types (default: all)")
    tail.add_argument("--state", type=Path, help="file keeping the last event id printed")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("--api-key (or INBOX_API_KEY) is required")
    logging.basicConfig(
        level=logging.INFO, format="inbox-client: %(message)s", stream=sys.stderr
    )
    # One line per ticket request would bury what matters: connects and reconnects.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    types = [t.strip() for t in args.events.split(",") if t.strip()] if args.events else None
    try:
        return asyncio.run(_run(args.url, args.api_key, types, args.state))
    except KeyboardInterrupt:
        return 130


async def _run(url: str, api_key: str, types: list[str] | None, state: Path | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    # A supervisor's SIGTERM ends the tail between two events, its state file whole.
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await tail(url, api_key, types, state)
    except asyncio.CancelledError:
        return 0
    except InboxError as error:
        log.error("%s", error)
        return 1
    return 0


async def tail(url: str, api_key: str, types: list[str] | None, state: Path | None) -> None:
    last_event_id = _read_state(state)
    async with InboxClient(url, api_key=api_key) as client:
        while True:
            try:
                async for event in client.events(types, last_event_id=last_event_id):
                    _print(event)
                    if "id" in event and state is not None:
                        _write_state(state, event["id"])
            except ReplayTruncated as truncated:
                log.warning("%s; carrying on from now", truncated.message)
                _print({"type": "replay.truncated", "last_event_id": truncated.last_event_id})
                last_event_id = None


def _print(frame: object) -> None:
    sys.stdout.write(json.dumps(frame, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _read_state(state: Path | None) -> int | None:
    if state is None:
        return None
    try:
        text = state.read_text().strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise SystemExit(f"inbox-client: {state} holds no event id: {text[:40]!r}")
    return int(text)


def _write_state(state: Path, event_id: int) -> None:
    # Replaced whole, so a crash mid-write never leaves half an id behind.
    partial = state.with_name(state.name + ".tmp")
    partial.write_text(f"{event_id}\n")
    os.replace(partial, state)
