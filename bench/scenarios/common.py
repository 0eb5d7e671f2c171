"""Turning runs into entries: each figure's median with min-max, and its ratio to the
reference measured in the same invocation (run i of the service over run i of the
reference, so both saw the same minutes of machine noise)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ..stats import ratio, spread

Entry = dict[str, Any]


def pick(result: dict[str, Any], path: str) -> Any:
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def figures(runs: Sequence[dict[str, Any]], paths: Sequence[str]) -> dict[str, Any]:
    return {path: spread([pick(r, path) for r in runs]) for path in paths}


def ratios(
    runs: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]], paths: Sequence[str]
) -> dict[str, Any]:
    return {
        path: spread([ratio(pick(a, path), pick(b, path)) for a, b in zip(runs, reference,
                                                                           strict=False)])
        for path in paths
    }


def guarded(name: str, work: Callable[[], list[Entry]]) -> list[Entry]:
    """A scenario that fails is recorded as such; the others still run."""
    try:
        return work()
    except Exception as exc:
        traceback.print_exc()
        return [{"scenario": name, "error": f"{type(exc).__name__}: {exc}"}]


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)
