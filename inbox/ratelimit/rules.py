"""The budgets: ``INBOX_RATE_LIMITS`` parsed into one rate per category."""

from __future__ import annotations

import re
from dataclasses import dataclass

PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
# auth: sign-ins, per e-mail and per client address; read: GET; write: the other
# methods; leads: the public lead form, per client address; invalid: credentials
# refused as nobody's, per client address; webhook: platforms' deliveries, per channel.
# The last is off unless set: platforms retry a 429 later, which delays real messages.
CATEGORIES = ("auth", "read", "write", "leads", "invalid", "webhook")
DEFAULTS = "auth=10/minute,read=1200/minute,write=300/minute,leads=10/minute,invalid=30/minute"
OFF = "off"
_RULE = re.compile(r"^(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?$")


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``period`` seconds, all of them at once at most."""

    count: int
    period: float

    @property
    def interval(self) -> float:
        """Seconds one request takes back from the budget until it is refilled."""
        return self.period / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"


def parse_rates(text: str) -> dict[str, Rate]:
    """``auth=10/minute,read=1200/minute`` over the defaults; ``off``: no limits at all;
    ``read=off``: none for that category. ValueError names what is wrong."""
    text = text.strip()
    if text.lower() == OFF:
        return {}
    rates = {name: rate for name, rate in _parse(DEFAULTS).items() if rate is not None}
    if text:
        for name, rate in _parse(text).items():
            if rate is None:
                rates.pop(name, None)
            else:
                rates[name] = rate
    return rates


def _parse(text: str) -> dict[str, Rate | None]:
    rates: dict[str, Rate | None] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = (part.strip().lower() for part in item.partition("="))
        if not sep or name not in CATEGORIES:
            raise ValueError(
                f"{item.strip()!r}: expected category=count/period with a category of "
                f"{', '.join(CATEGORIES)}, e.g. read=1200/minute"
            )
        if value == OFF:
            rates[name] = None
            continue
        match = _RULE.match(value)
        if match is None or match.group(3) not in PERIODS or int(match.group(1)) < 1:
            raise ValueError(
                f"{name}={value}: expected a count of at least 1 per second, minute, hour "
                "or day, e.g. 10/minute or 100/5minutes"
            )
        count, times, unit = match.groups()
        period = PERIODS[unit] * (int(times) if times else 1)
        if period <= 0:
            raise ValueError(f"{name}={value}: the period must be longer than 0")
        rates[name] = Rate(int(count), period)
    return rates
