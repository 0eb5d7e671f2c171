"""`inbox analytics-rebuild`: the rollups recomputed from the messages."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings
from .database import prepare, run
from .output import emit


def cmd_rebuild_analytics(args: argparse.Namespace, settings: Settings) -> int:
    from ..services.rollups import rebuild_all

    async def work(db: Any) -> int:
        rows = await rebuild_all(db, args.org)
        which = f"organization {args.org}" if args.org is not None else "every organization"
        emit(args, {"rows": rows}, f"rebuilt the message rollups of {which}: {rows} rows")
        return 0

    prepare(args, settings)
    return run(settings, work)
