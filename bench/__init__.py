"""The benchmark suite: fan-out, ingest, memory, replay and two processes behind Redis.

`python -m bench` (or `make bench`) runs it; `bench/README.md` explains the figures.
"""
