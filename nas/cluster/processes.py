"""Which processes on this machine belong to a local job, and ending them all.

The local backend starts a job's wrapper in a new session with the variable
:data:`MARKER` set to the job id; every process the job starts inherits both.
A job is over only when none of them is left: the wrapper can be killed (or
its pid record lost) while the trainer still trains, and a trainer can leave a
child behind when it exits. So the job's processes are those of its session
(not the leader: a pid, and with it a session id, can be reused once the
session is gone) and those that carry its marker, which also finds a process
that left the session with ``setsid``. Where there is no ``/proc`` the session
is checked with ``killpg(session, 0)``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

#: The environment variable naming the local job a process belongs to.
MARKER = "SPLINENAS_LOCAL_JOB"

_PROC = "/proc"
_POLL = 0.05


@dataclass(frozen=True)
class Process:
    pid: int
    session: int
    job: str | None  # the value of MARKER in its environment, if readable


class ProcessTable:
    """One look at the live (not zombie) processes of this machine."""

    def __init__(self, processes: list[Process] | None) -> None:
        self._listed = processes is not None  # False: no /proc here
        self._by_job: dict[str, list[int]] = {}
        self._by_session: dict[int, list[int]] = {}
        for p in processes or []:
            if p.job is not None:
                self._by_job.setdefault(p.job, []).append(p.pid)
            if p.session != p.pid:
                self._by_session.setdefault(p.session, []).append(p.pid)

    @classmethod
    def snapshot(cls) -> ProcessTable:
        if not os.path.isdir(_PROC):
            return cls(None)
        processes = []
        for entry in os.listdir(_PROC):
            if entry.isdigit() and (process := _read_process(int(entry))) is not None:
                processes.append(process)
        return cls(processes)

    def members(self, job_id: str, session: int | None) -> list[int]:
        """Pids of job ``job_id`` whose wrapper started session ``session`` (None: unknown)."""
        if not self._listed:
            return [session] if session is not None and _group_exists(session) else []
        found = self._by_job.get(job_id, [])
        if session is not None:
            found = found + self._by_session.get(session, [])
        return sorted(set(found))


def end_job(job_id: str, session: int | None, *, grace: float, spare: int | None = None) -> bool:
    """SIGTERM every process of the job, SIGKILL what is left after ``grace`` seconds.

    ``spare`` (the job's wrapper, about to exit on its own) is not signalled.
    Returns True once none is left (waiting up to ``grace`` more seconds after
    SIGKILL); False when some survive (stuck in the kernel), so the job must
    still count as running.
    """
    for signum in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace
        sent: set[int] = set()
        while pids := _others(job_id, session, spare):
            # The session's group first, at once: a script whose child alone died would go on.
            for pid in sorted(set(pids) - sent, key=lambda p: p != session):
                _signal(pid, signum, group=pid == session)
                sent.add(pid)
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL)
        else:
            return True
    return False


def _others(job_id: str, session: int | None, spare: int | None) -> list[int]:
    return [p for p in ProcessTable.snapshot().members(job_id, session) if p != spare]


def _read_process(pid: int) -> Process | None:
    """The session and marker of ``pid``; None for a zombie or a process gone meanwhile."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if len(fields) < 4 or fields[0] in (b"Z", b"X"):
        return None
    return Process(pid, int(fields[3]), _marker(pid))


def _marker(pid: int) -> str | None:
    """The job id in the environment of ``pid`` (readable for this user's processes only)."""
    try:
        if os.stat(f"{_PROC}/{pid}").st_uid != os.getuid():
            return None
        with open(f"{_PROC}/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return None
    prefix = MARKER.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(pid: int, signum: int, *, group: bool) -> None:
    """Signal one process; the session id itself only stands for the group (no /proc)."""
    try:
        (os.killpg if group else os.kill)(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
