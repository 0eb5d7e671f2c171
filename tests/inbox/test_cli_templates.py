"""`inbox channels sync-templates`: a WhatsApp channel's templates read from its Business
Account through INBOX_GRAPH_API_URL. The command is run in this process: the rest of
the command line is tried as a real process in test_cli."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inbox.cli import main
from tests.connectors.fake_platform import FakePlatform
from tests.inbox.templates_support import HELLO, ORDER_UPDATE, PROMO
from tests.inbox.test_cli import SECRET, SECRETS_KEY


def inbox(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_sync_templates_reads_every_page_and_says_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with FakePlatform() as platform:
        platform.templates("102000000000077", [ORDER_UPDATE, HELLO, PROMO], page_size=2)
        for name, value in {
            "INBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'inbox.db'}",
            "INBOX_SECRET_KEY": SECRET,
            "INBOX_SECRETS_KEY": SECRETS_KEY,
            "INBOX_GRAPH_API_URL": platform.base_url,
            "INBOX_LOG_LEVEL": "warning",
        }.items():
            monkeypatch.setenv(name, value)
        _, out, _ = inbox(capsys, "create-org", "--name", "Acme", "--create", "--json")
        org = json.loads(out)["id"]
        _, out, _ = inbox(
            capsys, "create-channel", "--org", str(org), "--kind", "whatsapp", "--name", "WA",
            "--set", "phone_number_id=106000000000077", "--set", "access_token=tok",
            "--set", "app_secret=sec", "--set", "verify_token=ver",
            "--set", "business_account_id=102000000000077", "--json",
        )
        channel = json.loads(out)["id"]

        synced = inbox(capsys, "channels", "sync-templates", str(channel))
        again = inbox(capsys, "channels", "sync-templates", "--json")
        missing = inbox(capsys, "channels", "sync-templates", "999")

    assert synced[:2] == (0, f"channel {channel} (WA): 3 templates (3 new, 0 removed)\n")
    assert json.loads(again[1]) == {
        "channels": [{"channel_id": channel, "templates": 3, "added": 0, "removed": 0}]
    }
    assert missing[0] == 1
    assert missing[2].strip().endswith("error: no WhatsApp channel 999")
