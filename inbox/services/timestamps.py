"""Times as the wire and stored platform data write them."""

from __future__ import annotations

from datetime import datetime


def utc_text(moment: datetime) -> str:
    """ISO 8601 with ``Z`` for UTC: ``2026-11-01T12:00:00Z``."""
    return moment.isoformat().replace("+00:00", "Z")
