"""`inbox-client` is a distribution of its own: the standard library, httpx and websockets
are all it imports, and its command is declared."""

from __future__ import annotations

import ast
import sys
import tomllib

from tests.clients.helpers import CLIENT_SRC

PACKAGE = CLIENT_SRC / "inbox_client"
ALLOWED = {"httpx", "websockets", "inbox_client"}


def top_level_imports(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_client_imports_only_the_standard_library_httpx_and_websockets():
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    imported = set().union(*(top_level_imports(path.read_text()) for path in files))
    assert imported - ALLOWED - sys.stdlib_module_names == set()


def test_the_distribution_declares_its_dependencies_and_command():
    project = tomllib.loads((CLIENT_SRC.parent / "pyproject.toml").read_text())["project"]
    assert project["name"] == "inbox-client"
    assert sorted(d.split(">")[0] for d in project["dependencies"]) == ["httpx", "websockets"]
    assert project["scripts"] == {"inbox-client": "inbox_client.cli:main"}
