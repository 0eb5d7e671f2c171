"""Unified Inbox: messaging webhooks in, CRM REST API and live events out."""

__version__ = "0.1.0"
