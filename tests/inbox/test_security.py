"""Passwords: an unknown account is checked like a known one, and importing costs nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from inbox.security import hash_password, verify_password


def test_no_hash_matches_an_unknown_account_and_a_known_one_needs_its_password() -> None:
    async def run() -> tuple[bool, bool, bool]:
        stored = await hash_password("right")
        return (
            await verify_password(None, "anything"),
            await verify_password(stored, "wrong"),
            await verify_password(stored, "right"),
        )

    assert asyncio.run(run()) == (False, False, True)


def test_importing_computes_no_hash() -> None:
    probe = "import inbox.security as s; print(s._dummy_hash.cache_info().currsize)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
