"""Optional py-spy profiles of the server processes while a generator job runs.

`python -m bench --profile` records each server process (sampling without pausing
it) into `bench/results/profiles/` as collapsed stacks, one line per stack, which
flame-graph tools read; each run's result also gets the top frames by own time.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(directory: Path, name: str, pids: list[int]) -> Iterator[list[Path]]:
    binary = py_spy()
    if binary is None:
        raise FileNotFoundError("py-spy is not installed: pip install py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}-{pid}.txt" for pid in pids]
    recorders = [
        subprocess.Popen(
            [binary, "record", "--nonblocking", "--rate", "100", "--format", "raw",
             "--output", str(path), "--pid", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for pid, path in zip(pids, paths, strict=True)
    ]
    try:
        yield paths
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()


def package_of(frame: str) -> str:
    """Where a frame's own time goes: the top-level package of its file.

    A sample whose innermost Python frame is the event loop's `run` is time spent
    in C below it: uvloop, the I/O system calls, the kernel.
    """
    if "asyncio/runners.py" in frame:
        return "event loop in C (uvloop, system calls)"
    location = frame[frame.rfind("(") + 1 : frame.rfind(":")]
    if not location:
        return "native (no Python frame)"
    top = location.split("/")[0]
    return {"inbox": "inbox", "<frozen _collections_abc>": "stdlib"}.get(top, top)


def summary(paths: list[Path], count: int = 15) -> dict[str, Any]:
    """The frames with the most own time, own time by package, and the project's
    functions with the most time including callees, as percentages of all samples.

    SQLAlchemy runs the ORM in greenlets, whose stacks do not link back to the
    request's coroutine: inclusive figures undercount database work, the figures
    by package do not."""
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            if not number.isdigit():
                continue
            weight = int(number)
            samples += weight
            frames = stack.split(";")
            own[frames[-1]] += weight
            packages[package_of(frames[-1])] += weight
            for frame in set(frames):
                if any(part in frame for part in ("inbox/", "realtime/", "connectors/")):
                    total[frame] += weight

    def top(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(100 * n / samples, 1)) for frame, n in counter.most_common(count)]

    return {
        "samples": samples,
        "files": [str(p) for p in paths],
        "top_own": top(own) if samples else [],
        "own_by_package": top(packages) if samples else [],
        "top_project_inclusive": top(total) if samples else [],
    }
