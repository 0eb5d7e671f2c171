"""The install lock: `make test` refuses to install from a lock older than pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_copy(tmp_path: Path) -> Path:
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "lock.py", tmp_path / "tools" / "lock.py")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(ROOT / "requirements.lock", tmp_path / "requirements.lock")
    return tmp_path


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "tools" / "lock.py"), "check"],
        capture_output=True, text=True, timeout=60,
    )


def test_the_committed_lock_matches_pyproject(tmp_path: Path) -> None:
    result = check(project_copy(tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_changed_range_without_a_refresh_is_refused(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"httpx>=0.27"', '"httpx>=0.28"'))
    result = check(root)
    assert result.returncode == 1
    assert "requirements.lock does not match" in result.stderr
    assert "make lock" in result.stderr


def test_a_new_dev_dependency_without_a_refresh_is_refused(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"ruff>=0.6",', '"ruff>=0.6",\n    "rich",'))
    assert check(root).returncode == 1


def test_every_pinned_package_carries_a_hash() -> None:
    pins = [
        line for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    ]
    assert pins, "the lock pins nothing"
    text = (ROOT / "requirements.lock").read_text()
    for pin in pins:
        assert "==" in pin, pin
        block = text.split(pin, 1)[1].split("\n", 2)[1]
        assert "--hash=sha256:" in block, f"{pin} has no hash"
