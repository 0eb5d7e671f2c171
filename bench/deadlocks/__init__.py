"""Deadlocks between two service processes on one PostgreSQL database."""
