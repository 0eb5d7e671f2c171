"""The direction of imports: connectors/ and realtime/ are libraries; inbox/ wires them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> top-level packages it must never import
FORBIDDEN = {
    "connectors": {"inbox", "realtime"},
    "realtime": {"inbox", "connectors"},
}


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module a source imports; relative imports resolve against ``package``."""
    here = package.split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            if node.module:
                found.append((node.lineno, ".".join([*base, node.module])))
            else:  # `from .. import x`: each name may be a module
                found += [(node.lineno, ".".join([*base, a.name])) for a in node.names]
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__") and bool(node.args)


def package_of(path: Path) -> str:
    """The package a file's relative imports start from."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1])


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_libraries_import_nothing_from_the_packages_above_or_beside_them(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    violations = []
    for path in files:
        for line, module in imported_modules(path.read_text(), package_of(path)):
            if module.split(".")[0] in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


def test_the_scan_sees_every_form_of_import() -> None:
    # A scan that cannot fail proves nothing: this source breaks every rule.
    source = (
        "import inbox.models\n"
        "from realtime import hub\n"
        "from .. import inbox\n"
        "from ..realtime.broker import Broker\n"
        "import importlib\n"
        "importlib.import_module('inbox.app')\n"
        "__import__('realtime')\n"
        "from . import types\n"
        "from .meta import verify\n"
        "def later():\n"
        "    from inbox import settings\n"
    )
    modules = [m for _, m in imported_modules(source, "connectors")]
    assert sorted(modules) == sorted([
        "inbox.models", "realtime", "inbox", "realtime.broker", "importlib", "inbox.app",
        "realtime", "connectors.types", "connectors.meta", "inbox",
    ])
    nested = [m for _, m in imported_modules("from ..hub import Hub\n", "realtime.backends")]
    assert nested == ["realtime.hub"]


# The command line calls services; the pieces of the web edge it needs are the
# server's head and connection limits, handed to uvicorn, and the replay of an
# archived webhook, which runs the request through the app as it is today.
CLI_FORBIDDEN = ("inbox.api", "inbox.web")
CLI_ALLOWED = {
    "inbox.web.head_meter",
    "inbox.web.http_limits",
    "inbox.web.connection_bounds",
    "inbox.web.webhook_replay",
}


def test_the_command_line_imports_nothing_from_the_routes() -> None:
    files = [ROOT / "inbox" / "cli.py", *sorted((ROOT / "inbox" / "commands").rglob("*.py"))]
    violations = []
    for path in files:
        for line, module in imported_modules(path.read_text(), package_of(path)):
            if module in CLI_ALLOWED:
                continue
            if any(module == f or module.startswith(f + ".") for f in CLI_FORBIDDEN):
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == []


# What changes the whole process is set up by the server's own start (inbox/process.py):
# building an app, as every test does, leaves the collector, signals and loggers alone.
PROCESS_WIDE = {"gc", "signal", "inbox.web.drain", "inbox.web.redaction"}


def test_building_the_app_touches_nothing_process_wide() -> None:
    path = ROOT / "inbox" / "app.py"
    found = {module for _, module in imported_modules(path.read_text(), package_of(path))}
    assert found & PROCESS_WIDE == set()
