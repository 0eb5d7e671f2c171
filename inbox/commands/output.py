"""What every command shares: its one-line failures, its output, its own name."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from typing import Any


class CliError(Exception):
    """A failure the user can act on: printed as one line, the command exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, default=str) if args.json else text)


def command_name() -> str:
    """This command as the user can type it from here, for hints meant to be pasted."""
    argv0 = sys.argv[0]
    name = os.path.basename(argv0)
    script = os.path.abspath(argv0)
    if name.endswith(".py") or not os.access(script, os.X_OK):
        # Run as `python -m ...` or from within another program: no path to show.
        return "inbox"
    try:
        found = shutil.which(name)
        if found is not None and os.path.samefile(found, script):
            return name
    except OSError:
        pass
    relative = os.path.relpath(script)
    if relative.startswith(os.pardir + os.sep):
        return shlex.quote(script)
    return shlex.quote(relative if os.sep in relative else os.curdir + os.sep + relative)
