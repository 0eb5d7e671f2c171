"""Wires the generic ``realtime`` library into the service."""

from .service import Live

__all__ = ["Live"]
