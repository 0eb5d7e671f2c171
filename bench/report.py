"""The results: one JSON file with every run, and a short Markdown table."""

# The tables use typographic dashes and multiplication signs on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .scenarios.common import Entry, pick
from .servers import REPO

# A generator this busy may be what limits the rate: its figures get a warning sign.
GENERATOR_BOUND_PCT = 90
PACKAGES = ("uvicorn", "websockets", "starlette", "uvloop", "httptools", "sqlalchemy",
            "aiosqlite", "asyncpg", "redis", "orjson")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", "inbox", "realtime",
                                         "connectors")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def other_load_pct(entries: Sequence[Entry], side: str) -> float | None:
    """How much of the `side` ("server" or "generator") cores other processes took
    during the fan-out windows (median): the noise the ratios and CPU-per-delivery
    figures are there to survive. Redis and PostgreSQL, not pinned, count as other."""
    values = []
    for entry in entries:
        if entry.get("scenario") not in ("fanout", "fanout-stalled", "cluster"):
            continue
        for run in entry.get("runs", []):
            busy = pick(run, f"window.{side}_cores_busy_pct")
            own = pick(run, f"window.{side}_cpu_pct")
            if busy is not None and own is not None:
                values.append(max(0.0, busy - own))
    return round(statistics.median(values), 1) if values else None


def other_load(entries: Sequence[Entry]) -> dict[str, float | None]:
    return {
        "other_load_on_server_cores_pct": other_load_pct(entries, "server"),
        "other_load_on_generator_cores_pct": other_load_pct(entries, "generator"),
    }


def write(out: Path, name: str, meta: dict[str, Any], entries: list[Entry]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, **other_load(entries)}
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "entries": entries}, indent=1))
    markdown = out / f"{name}.md"
    markdown.write_text(render(meta, entries))
    return markdown


def rerender(path: Path, note: str | None = None) -> Path:
    """Rewrite the Markdown table of a results file (after a change to the format, or
    to add a remark), from its JSON; the measurements are left as they are."""
    data = json.loads(path.read_text())
    meta = data["meta"] = {**data["meta"], **other_load(data["entries"])}
    if note:
        meta["note"] = f"{meta.get('note') or ''} {note}".strip()
    path.write_text(json.dumps(data, indent=1))
    markdown = path.with_suffix(".md")
    markdown.write_text(render(meta, data["entries"]))
    return markdown


# -- Markdown ------------------------------------------------------------------------


def cell(figure: dict[str, Any] | None, digits: int = 0, suffix: str = "") -> str:
    if figure is None:
        return "–"
    median, low, high = figure["median"], figure["min"], figure["max"]
    if low == high:
        return f"{_num(median, digits)}{suffix}"
    return f"{_num(median, digits)}{suffix} ({_num(low, digits)}–{_num(high, digits)})"


def _num(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _fig(entry: Entry, path: str) -> dict[str, Any] | None:
    return (entry.get("figures") or {}).get(path)


def _vs(entry: Entry, path: str) -> dict[str, Any] | None:
    return (entry.get("vs_reference") or {}).get(path)


def _faults(entry: Entry) -> str:
    parts = [_fig(entry, p) for p in ("lost", "duplicates", "out_of_order")]
    text = " / ".join("–" if p is None else _num(p["max"], 0) for p in parts)
    for path, what in (("disconnected_clients", "disconnected"), ("errors", "failed requests")):
        figure = _fig(entry, path)
        if figure is not None and figure["max"]:
            text += f" ({_num(figure['max'], 0)} {what})"
    return text


def fanout_table(entries: Sequence[Entry]) -> list[str]:
    lines = [
        "| server | driver | rate | deliveries/s | × ref | p50 ms | p95 ms | p99 ms | p99 × ref "
        "| lost / dup / ooo (max) | backlog | server µs/delivery | × ref | server CPU % "
        "| generator CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e['server']} | {e['driver']} | {e['rate']} "
            f"| {cell(_fig(e, 'deliveries_per_s'))} | {cell(_vs(e, 'deliveries_per_s'), 2, '×')} "
            f"| {cell(_fig(e, 'p50_ms'), 1)} | {cell(_fig(e, 'p95_ms'), 1)} "
            f"| {cell(_fig(e, 'p99_ms'), 1)} | {cell(_vs(e, 'p99_ms'), 2, '×')} "
            f"| {_faults(e)} | {cell(_fig(e, 'backlog_at_end'))} "
            f"| {cell(_fig(e, 'server_cpu_us_per_delivery'), 1)} "
            f"| {cell(_vs(e, 'server_cpu_us_per_delivery'), 2, '×')} "
            f"| {cell(_fig(e, 'window.server_cpu_pct'))} "
            f"| {_generator(e)} |"
        )
    return lines


def ingest_table(entries: Sequence[Entry]) -> list[str]:
    lines = [
        "| server | subscribers | webhooks/s | ack p50 ms | ack p99 ms | server µs/webhook "
        "| errors | lost / dup / ooo (max) | server CPU % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        lines.append(
            f"| {e['server']} | {e['subscribers']} | {cell(_fig(e, 'webhooks_per_s'))} "
            f"| {cell(_fig(e, 'ack_ms.p50_ms'), 1)} | {cell(_fig(e, 'ack_ms.p99_ms'), 1)} "
            f"| {cell(_fig(e, 'server_cpu_us_per_webhook'))} | {cell(_fig(e, 'errors'))} "
            f"| {_faults(e) if e['subscribers'] else '–'} "
            f"| {cell(_fig(e, 'window.server_cpu_pct'))} |"
        )
    return lines


def memory_table(entries: Sequence[Entry]) -> list[str]:
    lines = ["| server | idle connections | KiB per connection | RSS before → after (MiB) "
             "| connect time s |", "|---|---|---|---|---|"]
    for e in entries:
        before, after = _fig(e, "rss_before_kib"), _fig(e, "rss_after_kib")
        rss = "–" if before is None or after is None else (
            f"{before['median'] / 1024:,.0f} → {after['median'] / 1024:,.0f}")
        per_connection = cell(_fig(e, "kib_per_connection"), 1)
        lines.append(f"| {e['server']} | {e['clients']:,} | {per_connection} "
                     f"| {rss} | {cell(_fig(e, 'connect_s'), 1)} |")
    return lines


def replay_table(entries: Sequence[Entry]) -> list[str]:
    lines = ["| server | events | seconds | events/s | gaps / repeats (max) | server µs/event |",
             "|---|---|---|---|---|---|"]
    for e in entries:
        gaps, repeats = _fig(e, "gaps"), _fig(e, "repeats")
        faults = "–" if gaps is None or repeats is None else (
            f"{gaps['max']:.0f} / {repeats['max']:.0f}")
        lines.append(f"| {e['server']} | {e['events']:,} | {cell(_fig(e, 'seconds'), 3)} "
                     f"| {cell(_fig(e, 'events_per_s'))} | {faults} "
                     f"| {cell(_fig(e, 'server_cpu_us_per_event'), 1)} |")
    return lines


def _gist(error: str) -> str:
    """The first and the last line of an error (the JSON keeps all of it)."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]} … {lines[-1]}"


def _pinning(options: dict[str, Any]) -> str:
    server, loadgen = options.get("server_cpus"), options.get("loadgen_cpus")
    if not server or not loadgen:
        return "Not pinned (taskset unavailable, one CPU, or --no-pin)"
    return (f"Servers pinned to CPU {','.join(map(str, server))}, "
            f"generator to CPU {','.join(map(str, loadgen))} (taskset)")


def _generator(entry: Entry) -> str:
    """The generator's CPU share, flagged when it may have been the bottleneck."""
    figure = _fig(entry, "window.generator_cpu_pct")
    text = cell(figure)
    if figure is not None and figure["max"] >= GENERATOR_BOUND_PCT:
        text += " ⚠"
    return text


def render(meta: dict[str, Any], entries: Sequence[Entry]) -> str:
    def by(name: str) -> list[Entry]:
        return [e for e in entries if e.get("scenario") == name and "error" not in e]

    options = meta["options"]
    lines = [
        f"# Benchmark results — {meta['started_at']}",
        "",
        f"`{meta['command'].strip()}` · commit {meta['machine']['commit']}"
        + (" (with uncommitted changes to the service)" if meta["machine"]["uncommitted_changes"]
           else "")
        + f" · {meta['machine']['cpu']} · Python {meta['machine']['python']}",
        "",
        f"{_pinning(options)}; medians of {options['runs']} runs with (min–max); "
        "× ref = ratio to the reference server measured in the same invocation, run by run. "
        "Load average before/after: "
        f"{meta['load_before']} / {meta['load_after']}. During the fan-out windows other "
        f"processes took {meta.get('other_load_on_server_cores_pct')} % of the server core and "
        f"{meta.get('other_load_on_generator_cores_pct')} % of the generator's (medians; Redis "
        "and PostgreSQL, not pinned, count as other).",
    ]
    if meta.get("note"):
        lines += ["", f"**Note:** {meta['note']}"]
    lines += ["", f"⚠ = the generator used ≥ {GENERATOR_BOUND_PCT} % of its core in some run: "
              "it may have limited that figure. What each column means: "
              "[bench/README.md](../README.md)."]
    sections = [
        ("Fan-out", fanout_table, by("fanout") + by("fanout-stalled")),
        ("Ingest", ingest_table, by("ingest")),
        ("Memory", memory_table, by("memory")),
        ("Replay", replay_table, by("replay")),
        ("Two processes behind Redis", fanout_table, by("cluster")),
    ]
    for title, table, chosen in sections:
        if chosen:
            lines += ["", f"## {title}", "", *table(chosen)]
    stalled = by("fanout-stalled")
    for e in stalled:
        vs = (e.get("vs_without_stalled") or {}).get("p99_ms")
        lines += ["", f"Stalled client evicted: {e['stalled_evicted']}; others' p99 with it ÷ "
                  f"without it (paired runs of the same length): {cell(vs, 2, '×')}."]
    failed = [e for e in entries if "error" in e]
    if failed:
        lines += ["", "## Failed", ""] + [f"- {e['scenario']}: {_gist(e['error'])}" for e in failed]
    return "\n".join(lines) + "\n"


def main() -> int:
    """`python -m bench.report results/latest.json [--note TEXT]`: rewrite its table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--note", help="a remark appended to the results' note")
    args = parser.parse_args()
    print(rerender(args.results, args.note).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
