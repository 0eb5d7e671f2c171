"""Small modules: each holds one concern, and none grows past a size read at a sitting."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("inbox", "realtime", "connectors")
MAX_LINES = 400


def test_no_module_of_the_three_packages_is_over_the_limit() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations/versions" not in path.as_posix()
    }
    assert sizes
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
