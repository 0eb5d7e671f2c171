"""The webhook archive: every `/webhooks/*` request as it arrived, and what became of it.

A request the group commit stores is recorded in the same transaction as its data
(`ingest.store_arrivals`); any other (refused, acknowledged without storing, a lead)
goes to the `ArchiveWriter`, which writes a batch a moment later, off the request path.
"""

from .record import (
    Delivery,
    current_delivery,
    delivery_row,
    kept_headers,
    outcome_of,
    started,
)
from .writer import ArchiveWriter

__all__ = [
    "ArchiveWriter",
    "Delivery",
    "current_delivery",
    "delivery_row",
    "kept_headers",
    "outcome_of",
    "started",
]
