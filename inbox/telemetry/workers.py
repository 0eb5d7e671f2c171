"""One scrape for every process of ``inbox serve --workers N``.

prometheus-client's multiprocess mode: each worker writes its figures to files in a
directory named by PROMETHEUS_MULTIPROC_DIR, and a scrape of any worker sums them.
The variable must be set before prometheus_client is first imported in a worker, so
the parent sets it before it starts them. The directory is new for each start (its
counters start from 0, which rate() reads as a restart), and a worker that stops
takes its gauges' files with it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path:
    """Make (or empty) the directory the workers about to start will share; the
    directory made here is removed when this process exits."""
    given = os.environ.get(MULTIPROCESS_DIR)
    if given:
        # The operator's: emptied of a previous run's files, which would count twice,
        # but for this process's own (made on import, and open).
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        own = f"_{os.getpid()}.db"
        for stale in path.glob("*.db"):
            if not stale.name.endswith(own):
                stale.unlink()
        return path
    path = Path(tempfile.mkdtemp(prefix="inbox-metrics-"))
    os.environ[MULTIPROCESS_DIR] = str(path)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def worker_stopped() -> None:
    """Drop this worker's live gauges (open connections, pool use) from the sums."""
    if not os.environ.get(MULTIPROCESS_DIR):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
