"""An organization to benchmark, made with the `inbox` command line.

`python -m bench.fixtures` (with `INBOX_DATABASE_URL` and `INBOX_SECRET_KEY` set)
migrates the database, creates an organization, its owner, an access token, a
WhatsApp channel and an API key, and prints them as one JSON object. It runs the
commands in one process so the set-up pays for Python's start-up once.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

from inbox.cli import main as inbox

EMAIL = "owner@bench.example"
PHONE_NUMBER_ID = "106540352242922"
WHATSAPP_SECRET = "bench-app-secret"
TOKEN_TTL = 7 * 24 * 3600


def command(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = inbox([*args, "--json"])
    if code != 0:
        raise SystemExit(f"inbox {' '.join(args[:1])} failed ({code}): {out.getvalue()}")
    return dict(json.loads(out.getvalue().strip().splitlines()[-1]))


def main() -> int:
    with contextlib.redirect_stdout(sys.stderr):
        inbox(["migrate"])
    org = str(command("create-org", "--name", "Bench")["id"])
    command("create-user", "--org", org, "--email", EMAIL, "--password", "bench-password-1",
            "--role", "owner")
    token = command("token", "--email", EMAIL, "--ttl", str(TOKEN_TTL))["access_token"]
    command("create-channel", "--org", org, "--kind", "whatsapp", "--name", "Bench WhatsApp",
            "--set", f"phone_number_id={PHONE_NUMBER_ID}",
            "--set", f"app_secret={WHATSAPP_SECRET}",
            "--set", "access_token=bench-access-token",
            "--set", "verify_token=bench-verify-token")
    api_key = command("create-api-key", "--org", org, "--name", "bench",
                      "--scopes", "ingest")["key"]
    print(json.dumps({
        "token": token,
        "api_key": api_key,
        "whatsapp_secret": WHATSAPP_SECRET,
        "phone_number_id": PHONE_NUMBER_ID,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
