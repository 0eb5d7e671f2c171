"""Use cases: each one a short transaction that records its events in the outbox."""
