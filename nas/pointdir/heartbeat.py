"""``heartbeat``: a running trainer's sign of life in its point folder.

Rank 0 touches the file every :data:`INTERVAL` seconds from a thread while a
segment trains and removes it when the segment ends. A scheduler can forget a
job whose training still runs (LSF and Flux drop finished jobs from their
listings, Slurm answers "Invalid job id", a node can lose contact), and a
retry beside it would train the point twice at once; so the controller judges
such a job only once its heartbeat is missing or older than :data:`STALE`.

The age is the file's modification time (set by the file server on a network
file system) against the controller's clock: the rule assumes the two differ
by much less than :data:`STALE`. A heartbeat from the future counts as fresh.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from nas.pointdir.layout import HEARTBEAT_FILE

#: Seconds between two beats.
INTERVAL = 30.0
#: A heartbeat older than this (six missed beats) belongs to a run that has ended.
STALE = 180.0


def beat(folder: str | os.PathLike) -> None:
    """Touch the heartbeat now (create it when missing)."""
    path = Path(folder) / HEARTBEAT_FILE
    with contextlib.suppress(FileExistsError):
        path.touch()
    os.utime(path)


@contextlib.contextmanager
def beating(folder: str | os.PathLike, interval: float = INTERVAL) -> Iterator[None]:
    """Beat every ``interval`` seconds while the body runs; remove the heartbeat after.

    A failing beat (a full or unreachable file system) is skipped: training
    goes on, and the controller only waits longer.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(OSError):
                beat(folder)

    with contextlib.suppress(OSError):
        beat(folder)  # the first beat before training starts
    thread = threading.Thread(target=loop, name="splinenas-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(OSError):
            (Path(folder) / HEARTBEAT_FILE).unlink()


def age(folder: str | os.PathLike, now: float | None = None) -> float | None:
    """Seconds since the last beat (negative: a clock ahead of ours), or None without one."""
    try:
        modified = (Path(folder) / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        return None
    return (time.time() if now is None else now) - modified


def fresh(folder: str | os.PathLike, now: float | None = None) -> bool:
    """Whether a training run in ``folder`` beat less than :data:`STALE` seconds ago."""
    seconds = age(folder, now)
    return seconds is not None and seconds < STALE
