"""`inbox-client tail` as an operator runs it: JSON lines on stdout, carrying on after a
restart from its state file, and after the service cut it off for reading too slowly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.clients.helpers import CLIENT_SRC

# Lead notes of this size make each lead.updated frame about 20 KB.
NOTES = "n" * 19_000
# A stopped reader is cut off once about 1 MiB waits for it, beyond what the kernel's
# buffers hold: far fewer than this many frames.
AT_MOST = 600


class Tail:
    """`python -m inbox_client tail ...` in a process of its own, its output collected."""

    def __init__(self, server: Any, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(CLIENT_SRC)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inbox_client", "tail", "--url", server.url,
             "--api-key", server.api_key, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self.lines: list[dict[str, Any]] = []
        self.log: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, events: bool) -> None:
        for line in stream:
            if events:
                self.lines.append(json.loads(line))
            else:
                self.log.append(line.decode(errors="replace"))

    def connected(self) -> bool:
        return any("connected" in line for line in self.log)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def wait_for(condition: Callable[[], bool], tail: Tail, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert tail.proc.poll() is None, "".join(tail.log)
        assert time.monotonic() < deadline, "".join(tail.log[-20:])
        time.sleep(0.02)


def names(tail: Tail) -> list[str]:
    return [line["data"]["name"] for line in tail.lines]


def evictions(api: httpx.Client) -> float:
    text = api.get("/metrics").text
    return sum(float(n) for n in re.findall(r"^realtime_evictions_total\{[^}]*\} (\S+)$",
                                            text, re.MULTILINE))


def test_tail_prints_json_lines_and_carries_on_from_its_state_file(inbox_server, tmp_path):
    state = tmp_path / "tail.state"
    with inbox_server.api(inbox_server.admin) as admin:
        with Tail(inbox_server, "--events", "lead.created", "--state", str(state)) as tail:
            wait_for(tail.connected, tail)
            for name in ("first", "second"):
                assert admin.post("/api/leads", json={"name": name}).status_code == 201
            wait_for(lambda: len(tail.lines) == 2, tail)
            assert tail.stop() == 0
        assert names(tail) == ["first", "second"]
        assert {line["type"] for line in tail.lines} == {"lead.created"}
        assert state.read_text().strip() == str(tail.lines[-1]["id"])

        for name in ("while stopped 1", "while stopped 2"):
            assert admin.post("/api/leads", json={"name": name}).status_code == 201
        with Tail(inbox_server, "--events", "lead.created", "--state", str(state)) as again:
            wait_for(lambda: len(again.lines) == 2, again)
            assert admin.post("/api/leads", json={"name": "live again"}).status_code == 201
            wait_for(lambda: len(again.lines) == 3, again)
        assert names(again) == ["while stopped 1", "while stopped 2", "live again"]


def test_tail_cut_off_for_reading_too_slowly_resumes_without_gap_or_repeat(inbox_server):
    with inbox_server.api(inbox_server.admin) as admin:
        lead = admin.post("/api/leads", json={"name": "Updated a lot"}).json()
        before = evictions(admin)
        with Tail(inbox_server, "--events", "lead.updated") as tail:
            wait_for(tail.connected, tail)
            # The reader stops reading, as a process paused or swapped out would.
            tail.proc.send_signal(signal.SIGSTOP)
            written = 0
            while evictions(admin) == before and written < AT_MOST:
                for _ in range(20):
                    notes = f"{written:05d} {NOTES}"
                    r = admin.patch(f"/api/leads/{lead['id']}", json={"notes": notes})
                    assert r.status_code == 200, r.text
                    written += 1
            assert evictions(admin) > before, f"not cut off after {written} events"
            tail.proc.send_signal(signal.SIGCONT)
            assert admin.patch(f"/api/leads/{lead['id']}", json={"notes": "done"}).is_success
            wait_for(lambda: bool(tail.lines) and tail.lines[-1]["data"]["notes"] == "done", tail)
            assert tail.stop() == 0
    printed = [line["data"]["notes"].split(" ")[0] for line in tail.lines]
    assert printed == [f"{n:05d}" for n in range(written)] + ["done"]
    ids = [line["id"] for line in tail.lines]
    assert ids == sorted(set(ids))

