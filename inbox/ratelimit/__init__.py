"""Request budgets per credential and per client address, shared by every process
through Redis (or kept in memory by a lone process)."""
