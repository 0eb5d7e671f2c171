"""The message rollups turned into a no-op, for an A/B run of what they cost:

    BENCH_SERVER_ENV=PYTHONPATH=$PWD/bench/rollups_off .venv/bin/python -m bench --only ingest

Python imports `sitecustomize` from the path at start-up, so every server process of
that run stores messages without counting them, and differs from a plain one by the
rollups alone. `python -m bench.analytics` starts one such server beside a plain one.
The analytics of what such a server stored are wrong until `inbox analytics-rebuild`.
"""

from typing import Any

from inbox.services import rollups


async def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


rollups.count_messages = _nothing  # type: ignore[assignment]
