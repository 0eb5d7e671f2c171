"""Channel secrets at rest: re-encrypting them, and making a new key."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings
from .database import prepare, run
from .output import CliError, emit


def cmd_secrets_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from ..services.channel_secrets import SETTING, ChannelSecrets, rotate_all

    async def work(db: Any) -> int:
        done = await rotate_all(db, ChannelSecrets.from_settings(settings))
        text = (
            f"rewrote {done.rewritten} secrets of {done.channels} channels under the newest "
            f"key ({done.encrypted} were plaintext, {done.reencrypted} under an older key); "
            f"{done.current} already were"
        )
        emit(
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

    prepare(args, settings)
    return run(settings, work)


def cmd_secrets_new_key(args: argparse.Namespace, _settings: Settings | None) -> int:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    emit(args, {"key": key}, key)
    return 0
