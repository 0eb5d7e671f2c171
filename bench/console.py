"""The console under load, in Debian's Chromium: an organization with many
conversations scrolled from top to bottom, customers writing in at a steady rate while
the list is on screen, then a conversation with a long history opened.

    .venv/bin/python -m bench.console [--conversations 10000] [--rate 50] [--seconds 10]

Reports the frame intervals the page achieved (requestAnimationFrame deltas: 16.7 ms
is every frame at 60 Hz), the long tasks (main-thread work over 50 ms) and how many
rows were in the document. Needs the `browser` extra (Playwright) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from .drivers import WhatsAppDriver
from .fixtures import EMAIL
from .servers import start_service

PASSWORD = "bench-password-1"
SECRET_KEY = "bench-console-signing-key-long-enough"
CHROMIUM = "/usr/bin/chromium"

# Frame intervals and long tasks, recorded in the page from the moment this runs.
WATCH = """() => {
  window.__frames = []; window.__long = [];
  let last = performance.now();
  const tick = (now) => {
    window.__frames.push(now - last); last = now; requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__long.push(entry.duration);
  }).observe({ type: "longtask", buffered: false });
}"""
COLLECT = """() => {
  const out = { frames: window.__frames, long: window.__long };
  window.__frames = []; window.__long = [];
  return out;
}"""


def frame_summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    frames = sorted(samples["frames"][1:]) or [0.0]
    def pct(p: float) -> float:
        return round(frames[min(len(frames) - 1, int(p * len(frames)))], 1)
    return {
        "frames": len(frames),
        "frame_ms_median": round(statistics.median(frames), 1),
        "frame_ms_p95": pct(0.95),
        "frame_ms_max": round(frames[-1], 1),
        "long_tasks": len(samples["long"]),
        "long_task_ms_max": round(max(samples["long"], default=0.0), 1),
    }


async def send_all(url: str, driver: WhatsAppDriver, phase: str, seqs: range,
                   *, rate: float | None = None, concurrency: int = 32) -> int:
    """Post one webhook per seq; paced at `rate` a second, or as fast as `concurrency`."""
    stored = 0
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async def one(seq: int) -> None:
            nonlocal stored
            async with limit:
                body, headers = driver.request(phase, seq, f"Message {phase} {seq}")
                r = await client.post(driver.path, content=body, headers=headers)
                stored += driver.acknowledged(r.status_code, r.content)
        tasks = []
        started = time.perf_counter()
        for index, seq in enumerate(seqs):
            if rate:
                await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(seq)))
        await asyncio.gather(*tasks)
    return stored


def measure(
    url: str, args: argparse.Namespace, driver: WhatsAppDriver, fixture: dict[str, Any]
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        listbox = page.get_by_role("listbox", name="Conversations")
        listbox.get_by_role("option").first.wait_for()

        # Page the whole list in, as an agent scrolling to the bottom would.
        listbox.hover()
        started = time.perf_counter()
        page.evaluate(WATCH)
        loaded = 0
        for _ in range(20 * args.conversations):
            page.mouse.wheel(0, 4000)
            loaded = int(page.evaluate(
                "() => Number(document.querySelector('[role=listbox] [role=option]:last-child')"
                "?.getAttribute('aria-posinset') || 0)"))
            if loaded >= args.conversations:
                break
        result["paging_s"] = round(time.perf_counter() - started, 1)
        result["rows_loaded"] = loaded
        page.evaluate(COLLECT)

        # A steady scroll back up through everything that is loaded.
        for _ in range(100):
            page.mouse.wheel(0, -1200)
            page.wait_for_timeout(16)
        result["scroll"] = frame_summary(page.evaluate(COLLECT))
        result["rows_in_document"] = listbox.get_by_role("option").count()

        # Customers writing in at a steady rate, each moving a row to the top.
        page.evaluate("() => document.querySelector('.rows-scroll').scrollTop = 0")
        page.evaluate(COLLECT)
        count = int(args.rate * args.seconds)
        # Playwright's own loop runs on this thread: the customers write from another.
        with ThreadPoolExecutor(1) as pool:
            stored = pool.submit(
                asyncio.run, send_all(url, driver, "live", range(count), rate=args.rate)
            ).result()
        last = f"Message live {count - 1}"
        listbox.get_by_role("option").filter(has_text=last).wait_for(timeout=30_000)
        result["live"] = {"sent": count, "stored": stored, **frame_summary(page.evaluate(COLLECT))}

        # One customer with a long history: the conversation opens on its latest page.
        long_driver = WhatsAppDriver("console-long", fixture["whatsapp_secret"],
                                     fixture["phone_number_id"], senders=1)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, send_all(url, long_driver, "long",
                                              range(args.history))).result()
        name = "Bench 16505550000"
        listbox.get_by_role("option").filter(has_text=name).first.wait_for(timeout=30_000)
        started = time.perf_counter()
        listbox.get_by_role("option").filter(has_text=name).first.click()
        log = page.get_by_role("log", name="Messages")
        log.get_by_text(f"Message long {args.history - 1}", exact=True).wait_for()
        result["long_conversation"] = {
            "messages": args.history,
            "open_to_latest_s": round(time.perf_counter() - started, 2),
            "messages_in_document": log.locator("[data-id]").count(),
        }
        browser.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="events a second while watching")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--history", type=int, default=5_000,
                        help="messages in the long conversation opened last")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")

    with tempfile.TemporaryDirectory(prefix="inbox-bench-console-") as workdir:
        database_url = f"sqlite:///{Path(workdir) / 'inbox.db'}"
        secrets_key = Fernet.generate_key().decode()
        env = {**os.environ, "INBOX_DATABASE_URL": database_url, "INBOX_SECRET_KEY": SECRET_KEY,
               "INBOX_SECRETS_KEY": secrets_key, "INBOX_ENV": "production"}
        made = subprocess.run([sys.executable, "-m", "bench.fixtures"], env=env, check=True,
                              capture_output=True, text=True)
        fixture = json.loads(made.stdout.strip().splitlines()[-1])
        server, port = start_service("inbox", Path(workdir), database_url=database_url,
                                     redis_url=None, secret_key=SECRET_KEY, cpus=None,
                                     extra_env={"INBOX_SECRETS_KEY": secrets_key,
                                                "INBOX_RATE_LIMITS": "off"})
        url = f"http://127.0.0.1:{port}"
        try:
            driver = WhatsAppDriver("console", fixture["whatsapp_secret"],
                                    fixture["phone_number_id"], senders=args.conversations)
            started = time.perf_counter()
            stored = asyncio.run(send_all(url, driver, "seed", range(args.conversations)))
            seeded = round(time.perf_counter() - started, 1)
            print(f"seeded {stored} conversations in {seeded} s", file=sys.stderr)
            result = {"conversations": args.conversations, **measure(url, args, driver, fixture)}
        finally:
            server.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
