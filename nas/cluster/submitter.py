"""A submission in flight stays visible to the next controller, even after a SIGKILL.

``sbatch`` and ``bsub`` retry for minutes when the scheduler is busy, and a
controller killed meanwhile leaves them running: such an orphan may submit
*after* a restarted controller asked the scheduler for the job name and
found nothing, and the point would run twice. So the controller takes an
``flock`` on a file named after the job (and its point folder) and lets the
submitter inherit the descriptor. An ``flock`` belongs to the open file
description, so it stays held while any process holding a copy lives: the
submitter, a wrapper script around it and that script's children. The next
controller asks the scheduler for the name only once it can take the lock
itself, when every submitter on this host has ended and its job, if any, is
known to the scheduler.

The files live in the local temporary folder, not on the (possibly NFS)
shared file system where ``flock`` semantics vary; a controller restarted on
another host cannot see an orphan of the first one, which is why the
controller also cancels any second job carrying a point's job name.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class LockHeld(RuntimeError):
    """An earlier submitter of this job name (an orphan of a killed controller) still runs."""


def lock_path(job_name: str, cwd: str | os.PathLike) -> Path:
    """The lock file of one submission: the job name plus a digest of its point folder."""
    where = hashlib.sha256(os.fsencode(os.path.realpath(cwd))).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"splinenas-submit-{os.getuid()}"
    return folder / f"{job_name}-{where}.lock"


@contextlib.contextmanager
def submitting(job_name: str, cwd: str | os.PathLike) -> Iterator[int]:
    """Hold the submission lock; yields the descriptor a submitter must inherit.

    Raises:
        LockHeld: another process holds the lock.
    """
    path = lock_path(job_name, cwd)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"an earlier submission of {job_name} is still running") from None
        yield fd
    finally:
        os.close(fd)
    in_flight(job_name, cwd)  # removes the file unless a submitter's child still holds it


def in_flight(job_name: str, cwd: str | os.PathLike) -> bool:
    """True while a submitter of ``job_name`` (or a child of one) still runs on this host.

    A free lock file is removed, under the lock, so the folder does not fill up.
    """
    path = lock_path(job_name, cwd)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return True
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(fd)
    return False
