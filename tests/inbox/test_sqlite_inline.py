"""The SQLite writer's connection subclasses aiosqlite's: what it relies on holds in the
installed aiosqlite, and a version it was not built for is named as such."""

from __future__ import annotations

import aiosqlite

from inbox.sqlite_inline import BUILT_FOR, unmet_assumptions


def test_the_installed_aiosqlite_is_one_the_inline_connection_was_built_for() -> None:
    assert unmet_assumptions() == [], (
        f"aiosqlite {aiosqlite.__version__}: inbox/sqlite_inline.py replaces private parts "
        f"of its Connection (built for {BUILT_FOR}): check what it reads, run the SQLite "
        "tests against it, then move BUILT_FOR"
    )


def test_a_version_outside_the_range_is_named() -> None:
    first, below = BUILT_FOR
    too_new = ".".join(map(str, below))
    assert unmet_assumptions(too_new) == [
        f"aiosqlite {too_new} is outside the versions it was built for"
    ]
    assert unmet_assumptions(".".join(map(str, first))) == []


def test_a_renamed_attribute_is_named(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delattr(aiosqlite.Connection, "_execute")
    assert unmet_assumptions() == ["aiosqlite.Connection has no _execute"]
