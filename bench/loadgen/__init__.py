"""The load generator: one process, pinned to its own core, that runs one job.

`python -m bench.loadgen` reads a `jobspec.Job` as JSON on stdin and prints its
result as JSON on stdout. It samples the servers' CPU and memory from /proc itself,
at the exact edges of its measurement windows, and reports its own CPU use too.
"""
