"""`inbox webhooks list|replay`: the operator's view of the webhook archive, which holds
what no organization sees (a delivery before its channel, a forged request). Run in
this process; the rest of the command line is tried as a real process in test_cli."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.signatures import meta_signature
from inbox.cli import main
from inbox.db import Database
from inbox.models import WebhookRecord
from inbox.settings import async_database_url
from tests.connectors.helpers import payload
from tests.inbox.test_cli import SECRET, SECRETS_KEY

NUMBER = "106000000000091"


def inbox(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else None, err


def recorded(url: str, body: bytes, secret: str, outcome: str, status: int) -> int:
    """A request as the archive kept it, before the channel it names was connected."""
    headers = [["host", "127.0.0.1:8000"], ["content-type", "application/json"],
               ["x-hub-signature-256", meta_signature(secret, body)]]

    async def insert() -> int:
        db = Database(async_database_url(url))
        async with db.session() as session:
            row = WebhookRecord(kind="whatsapp", method="POST", headers=headers, body=body,
                                url="http://127.0.0.1:8000/webhooks/whatsapp",
                                outcome=outcome, status=status)
            session.add(row)
            await session.commit()
            await db.dispose()
            assert row.id is not None
            return row.id

    return asyncio.run(insert())


def test_the_operator_lists_and_replays_records_of_no_organization(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    for name, value in {"INBOX_DATABASE_URL": url, "INBOX_SECRET_KEY": SECRET,
                        "INBOX_SECRETS_KEY": SECRETS_KEY, "INBOX_LOG_LEVEL": "warning",
                        "INBOX_MEDIA_FETCH": "false"}.items():
        monkeypatch.setenv(name, value)
    _, org, _ = inbox(capsys, "create-org", "--name", "Acme", "--create")
    body = payload("whatsapp", "text.json").replace(b"106540352242922", NUMBER.encode())
    early = recorded(url, body, "app-secret", "unknown_channel", 401)
    forged = recorded(url, body, "not-the-secret", "bad_signature", 401)
    inbox(capsys, "create-channel", "--org", str(org["id"]), "--kind", "whatsapp",
          "--name", "WA", "--set", f"phone_number_id={NUMBER}", "--set", "access_token=t",
          "--set", "app_secret=app-secret", "--set", "verify_token=v")

    first = inbox(capsys, "webhooks", "replay", str(early))
    again = inbox(capsys, "webhooks", "replay", str(early))
    refused = inbox(capsys, "webhooks", "replay", str(forged), "999")
    _, listed, _ = inbox(capsys, "webhooks", "list")

    assert first[0] == 0 and first[1]["replays"][0]["outcome"] == "stored"
    assert again[0] == 0 and again[1]["replays"][0]["outcome"] == "duplicate"
    assert refused[0] == 1
    assert [r["error"] for r in refused[1]["replays"]] == [
        "A request that failed its signature or key check is never replayed",
        "no such record"]
    assert [(r["outcome"], r["replay_of"], r["organization_id"])
            for r in listed["records"]] == [
        ("duplicate", early, org["id"]), ("stored", early, org["id"]),
        ("bad_signature", None, None), ("unknown_channel", None, None)]
