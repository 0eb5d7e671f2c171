"""`make audit`: a known vulnerability in the lock fails the run and names its fix; a
machine that cannot reach the vulnerability service says how much it could not audit,
and passes. pip-audit's report is played by a script printing its JSON shape."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def audit_module() -> Any:
    spec = importlib.util.spec_from_file_location("audit", ROOT / "tools" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reporting(tmp_path: Path, report: dict[str, Any] | None, stderr: str = "") -> str:
    """An executable that answers as pip-audit would, whatever it is asked."""
    script = tmp_path / "pip-audit"
    out = json.dumps(report) if report is not None else ""
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write({out!r})\n"
        f"sys.stderr.write({stderr!r})\nsys.exit({1 if report and _vulnerable(report) else 0})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def _vulnerable(report: dict[str, Any]) -> bool:
    return any(d.get("vulns") for d in report["dependencies"])


def test_a_known_vulnerability_fails_and_names_the_fix(tmp_path, capsys) -> None:
    report = {"dependencies": [
        {"name": "starlette", "version": "0.1.0", "vulns": [
            {"id": "GHSA-abcd-1234", "fix_versions": ["0.2.1", "0.3.0"], "aliases": []}]},
        {"name": "httpx", "version": "0.28.1", "vulns": []},
    ], "fixes": []}
    assert audit_module().audit(reporting(tmp_path, report)) == 1
    err = capsys.readouterr().err
    assert "starlette 0.1.0: GHSA-abcd-1234 (fixed in: 0.2.1, 0.3.0)" in err


def test_a_clean_lock_passes(tmp_path, capsys) -> None:
    report = {"dependencies": [{"name": "httpx", "version": "0.28.1", "vulns": []}]}
    assert audit_module().audit(reporting(tmp_path, report)) == 0
    assert "1 packages audited, 0 known vulnerabilities" in capsys.readouterr().out


def test_offline_it_says_what_it_could_not_audit_and_passes(tmp_path, capsys) -> None:
    report = {"dependencies": [
        {"name": "httpx", "version": "0.28.1",
         "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]}
    assert audit_module().audit(reporting(tmp_path, report)) == 0
    assert "1 of 1 pinned packages could not be audited" in capsys.readouterr().err


@pytest.mark.parametrize("stderr,code", [
    ("requests.exceptions.ConnectionError: Max retries exceeded", 0),
    ("error: invalid requirement in requirements.lock", 1),
])
def test_a_run_without_a_report_passes_only_when_the_service_was_unreachable(
    tmp_path, stderr, code
) -> None:
    assert audit_module().audit(reporting(tmp_path, None, stderr)) == code
