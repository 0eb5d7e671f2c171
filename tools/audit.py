"""Known vulnerabilities in what requirements.lock pins, by pip-audit.

    python3 tools/audit.py   # run by `make audit`, which `make test` runs

Fails when a pinned version has a published vulnerability, naming it and the versions
that fix it. A machine that cannot reach the vulnerability service (an isolated build
host) audits nothing: that is said plainly, and is not a failure, since no finding
was made either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def audit(pip_audit: str) -> int:
    run = subprocess.run(
        [
            pip_audit, "--requirement", str(LOCK), "--require-hashes", "--disable-pip",
            "--progress-spinner", "off", "--format", "json", "--vulnerability-service", "pypi",
        ],
        capture_output=True,
        text=True,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(f"audit: not audited, pip-audit failed:\n{run.stderr.strip()}", file=sys.stderr)
        return 0 if _unreachable(run.stderr) else 1
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    found = [(d, v) for d in dependencies for v in d.get("vulns", [])]
    for dependency, vuln in found:
        fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
        print(
            f"audit: {dependency['name']} {dependency['version']}: {vuln['id']} "
            f"(fixed in: {fixes})",
            file=sys.stderr,
        )
    audited = len(dependencies) - len(skipped)
    if skipped:
        print(
            f"audit: {len(skipped)} of {len(dependencies)} pinned packages could not be "
            f"audited (vulnerability service unreachable or unaware of them), e.g. "
            f"{skipped[0]['name']}: {skipped[0]['skip_reason']}",
            file=sys.stderr,
        )
    print(f"audit: {audited} packages audited, {len(found)} known vulnerabilities")
    return 1 if found else 0


def _unreachable(stderr: str) -> bool:
    return any(
        sign in stderr
        for sign in ("ConnectionError", "NameResolutionError", "Max retries exceeded", "timed out")
    )


def main() -> int:
    pip_audit = Path(sys.executable).parent / "pip-audit"
    return audit(str(pip_audit))


if __name__ == "__main__":
    sys.exit(main())
