"""The install lock: every package `make run` and `make test` install, pinned with hashes.

    python3 tools/lock.py check              # does requirements.lock match pyproject.toml?
    python3 tools/lock.py refresh            # resolve again, keeping today's pins that fit
    python3 tools/lock.py refresh --upgrade  # resolve anew: newest versions in the ranges

`pyproject.toml` keeps the ranges the project works with; `requirements.lock` pins one
tested set of them. The lock records a digest of what it was resolved from, so a
change to the ranges without a refresh is caught before anything is installed.
Standard library only: `check` runs before the virtual environment exists.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
# The resolver used for refreshing; pinned so that two refreshes of the same
# inputs on the same day write the same file.
UV = "uv==0.13.9"
PYTHON_VERSION = "3.11"
DIGEST_PREFIX = "# inputs-sha256: "
# The installer itself is pinned too: the one a new virtual environment brings is
# whatever the machine's Python shipped with.
INSTALLER = ["pip>=25.3"]


def inputs() -> list[str]:
    """What the lock is resolved from: the dependencies, the dev extra, the build backend."""
    project = tomllib.loads(PYPROJECT.read_text())
    return [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["dev"],
        *project["build-system"]["requires"],
        *INSTALLER,
    ]


def digest(requirements: list[str]) -> str:
    return hashlib.sha256(json.dumps(sorted(requirements)).encode()).hexdigest()


def recorded_digest() -> str | None:
    if not LOCK.exists():
        return None
    for line in LOCK.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def check() -> int:
    if recorded_digest() != digest(inputs()):
        print(
            f"error: {LOCK.name} does not match the requirements in {PYPROJECT.name}; "
            "run `make lock` and commit the result",
            file=sys.stderr,
        )
        return 1
    return 0


def refresh(upgrade: bool = False) -> int:
    requirements = inputs()
    with tempfile.TemporaryDirectory() as tmp:
        tool = Path(tmp) / "venv"
        venv.create(tool, with_pip=True)
        subprocess.run(
            [tool / "bin" / "pip", "install", "--quiet", UV], check=True
        )
        spec = Path(tmp) / "requirements.in"
        spec.write_text("\n".join(requirements) + "\n")
        resolved = Path(tmp) / "requirements.lock"
        if LOCK.exists() and not upgrade:
            # uv prefers the versions already in its output file: a new dependency
            # comes in without moving every other pin.
            resolved.write_text(LOCK.read_text())
        subprocess.run(
            [
                tool / "bin" / "uv", "pip", "compile", spec,
                "--generate-hashes", "--universal", "--python-version", PYTHON_VERSION,
                "--no-header", "--no-annotate", "--quiet", "--output-file", resolved,
            ],
            check=True,
        )
        pins = resolved.read_text()
    LOCK.write_text(
        "# Every package the service and its tests install, pinned with hashes.\n"
        "# Made by `make lock` (python3 tools/lock.py refresh) from pyproject.toml;\n"
        "# `make test` refuses to install when pyproject.toml changed since.\n"
        f"{DIGEST_PREFIX}{digest(requirements)}\n"
        f"{pins}"
    )
    print(f"wrote {LOCK.relative_to(ROOT)}")
    return 0


def main(argv: list[str]) -> int:
    if argv == ["check"]:
        return check()
    if argv in (["refresh"], ["refresh", "--upgrade"]):
        return refresh(upgrade=len(argv) == 2)
    print(f"usage: {Path(__file__).name} check | refresh [--upgrade]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
