"""Two service processes behind Redis (PostgreSQL shared) with the clients split
between them and the webhooks alternating, against two reference processes."""

from __future__ import annotations

import contextlib

from ..environment import Environment
from .common import Entry
from .fanout import series

RATES: tuple[float | None, ...] = (10, None)


def run(env: Environment) -> list[Entry]:
    with contextlib.ExitStack() as stack:
        service = stack.enter_context(env.service("postgres", redis=True, count=2))
        reference = (
            stack.enter_context(env.reference(count=2)) if env.options.reference else None
        )
        rates = [r for r in RATES if r in env.options.rates] or list(env.options.rates)
        return series(env, "cluster", service, reference, rates, ("whatsapp",))
