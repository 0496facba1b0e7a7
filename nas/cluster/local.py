"""The local backend: detached processes on this machine, no scheduler needed.

Each job gets a folder ``<root>/<job id>/`` holding its name, the pid of a
tiny wrapper shell and, once the job ends, its exit code. The wrapper starts
the script in a new session and outlives the controller; a restarted
controller reads the folders back. Job ids embed the submission time and
random bits, so they never repeat.

A job has ended only when its processes are gone (:mod:`nas.cluster.processes`),
whatever its files say: a job whose wrapper was killed, or whose pid record
vanished, runs on while its trainer does; a job whose script exited ends only
after what it left behind has been sent SIGTERM, then SIGKILL after
:data:`KILL_GRACE` seconds, as a cluster scheduler ends a job's processes. So
a retry never trains next to its predecessor.

The walltime is enforced as a scheduler enforces it, by the wrapper and so
without the controller: at start + walltime it records ``timeout`` in the
folder and sends the job's processes SIGTERM (a trainer checkpoints and exits
3), then SIGKILL after :data:`KILL_GRACE` seconds; the job ends as TIMEOUT.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from nas.cluster.base import JobRecord, JobState, Scheduler, SchedulerError
from nas.cluster.proc import DEFAULT_TIMEOUT, spawn_detached
from nas.cluster.processes import MARKER, ProcessTable, end_job
from nas.cluster.render import ScriptError, ranks_per_node
from nas.config import ClusterConfig

#: Writes its pid, runs the script, writes the exit code. It ignores TERM (a
#: cancel), which the script does not, so it survives to record the script's
#: status; a job cancelled before its wrapper got going never starts. Given a
#: walltime (seconds; empty: none), a watchdog in the job's process group waits
#: on a pipe only the wrapper holds: once the walltime has passed it records
#: ``timeout`` and sends the group TERM, then KILL after ``grace`` seconds. The
#: wrapper's end, by exit or by a kill of it alone, closes the pipe and stops it.
WRAPPER = r"""
dir=$1
walltime=$2
grace=$3
shift 3
record() {
    printf '%s\n' "$2" >"$dir/$1.tmp" && mv "$dir/$1.tmp" "$dir/$1"
}
finish() {
    record exitcode "$1"
    exit "$1"
}
watchdog() {
    trap - TERM
    read -r -t "$walltime"
    (($? > 128)) || exit
    record timeout "$walltime"
    trap '' TERM
    kill -TERM -- "-$$"
    trap - TERM
    read -r -t "$grace"
    (($? > 128)) || exit
    kill -KILL -- "-$$"
}
record pid "$$"
[[ -e $dir/cancelled ]] && finish 143
trap '' TERM
(trap - TERM && exec "$@") &
child=$!
watching=
if [[ -n $walltime ]]; then
    exec 9> >(watchdog)
    watching=$!
fi
wait "$child"
rc=$?
exec 9>&-
[[ -z $watching ]] || wait "$watching"
finish "$rc"
"""

_N = TypeVar("_N", int, float)

#: Seconds between SIGTERM and SIGKILL when cancelling, ending leftovers or at the walltime.
KILL_GRACE = 10.0
#: Seconds a job may take to record its pid before it counts as lost.
START_GRACE = 30.0


_JOB_ID = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{8}$")


def new_job_id() -> str:
    """Time-ordered and random: unique across restarts, sortable by submission."""
    return f"{time.time_ns():016x}-{secrets.token_hex(4)}"


class LocalScheduler(Scheduler):
    """Jobs as detached process groups, tracked in files under ``root``."""

    name = "local"

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        walltime: float | None = None,
    ) -> None:
        """Job records under ``root``; a job ends at ``walltime`` seconds (None: no limit).

        The controller's walltime is ``[cluster] walltime_minutes`` (:meth:`create`);
        a test may give a second.
        """
        super().__init__(timeout=timeout)
        if walltime is not None and not (math.isfinite(walltime) and walltime > 0):
            raise ValueError(f"walltime must be a positive number of seconds, got {walltime}")
        self.root = Path(root).absolute()
        self.walltime = walltime
        self._children: dict[str, subprocess.Popen] = {}

    @classmethod
    def create(
        cls, *, cluster: ClusterConfig, local_root: str | os.PathLike, timeout: float
    ) -> LocalScheduler:
        return cls(local_root, timeout=timeout, walltime=cluster.walltime_minutes * 60)

    @staticmethod
    def launcher_argv(cluster: ClusterConfig, python: str) -> list[str]:
        """The interpreter, behind torchrun when several ranks share the machine."""
        if cluster.nodes != 1:
            raise ScriptError(
                f"the local backend runs on one node; cluster.nodes is {cluster.nodes}",
                "cluster.nodes",
            )
        ranks = ranks_per_node(cluster)
        if ranks == 1:
            return [python]
        return [python, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                f"--nproc-per-node={ranks}"]  # fmt: skip

    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        job_id = new_job_id()
        folder = self.root / job_id
        folder.mkdir()
        (folder / "name").write_text(job_name + "\n", encoding="utf-8")
        walltime = "" if self.walltime is None else _seconds(self.walltime)
        argv = ["bash", "-c", WRAPPER, "splinenas-job", str(folder), walltime,
                _seconds(KILL_GRACE), "bash", str(script)]  # fmt: skip
        env = {**os.environ, MARKER: job_id}
        self._children[job_id] = spawn_detached(argv, cwd=cwd, log_path=folder / "output", env=env)
        return job_id

    def _query(self, job_ids: Sequence[str], job_names: Sequence[str]) -> list[JobRecord]:
        # Reap finished wrappers so that they do not linger as zombies.
        self._children = {i: c for i, c in self._children.items() if c.poll() is None}
        if job_names:
            folders = self._all_folders()
        else:
            folders = [self.root / i for i in job_ids if _JOB_ID.fullmatch(i)]
        table = ProcessTable.snapshot()
        return [self._record(f, table) for f in folders if (f / "name").is_file()]

    def _confirm(self, job_ids: Sequence[str]) -> dict[str, JobRecord | None]:
        """A job without a folder: running while processes carry its id, else gone."""
        table = ProcessTable.snapshot()
        return {
            i: JobRecord(i, JobState.RUNNING, "") if table.members(i, None) else None
            for i in job_ids
        }

    def _all_folders(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def _record(self, folder: Path, table: ProcessTable) -> JobRecord:
        name = (folder / "name").read_text(encoding="utf-8").strip()
        return JobRecord(folder.name, self._state(folder, table), name)

    def _state(self, folder: Path, table: ProcessTable) -> JobState:
        exitcode = _read_number(folder / "exitcode", int)
        cancelled = (folder / "cancelled").exists()
        timed_out = (folder / "timeout").exists()
        pid = _read_number(folder / "pid", int)
        members = table.members(folder.name, pid)
        # The script is over once its wrapper recorded how, or was killed at the walltime.
        if exitcode is not None or (timed_out and pid not in members):
            leftovers = [p for p in members if p != pid]
            if leftovers and not end_job(folder.name, pid, grace=KILL_GRACE, spare=pid):
                return JobState.RUNNING  # what the script left behind does not die yet
            if cancelled and exitcode != 0:
                return JobState.CANCELLED
            if timed_out and exitcode != 0:
                return JobState.TIMEOUT
            return JobState.COMPLETED if exitcode == 0 else JobState.FAILED
        if members:
            return JobState.RUNNING  # its wrapper, or what it started once the wrapper is gone
        if cancelled:
            return JobState.CANCELLED
        if pid is None and _age(folder) < START_GRACE:
            return JobState.PENDING
        return JobState.FAILED  # killed with all its processes, or the machine went down

    def _folder(self, job_id: str) -> Path | None:
        """The job's folder, or None for an id this backend never gave out."""
        folder = self.root / job_id
        return folder if _JOB_ID.fullmatch(job_id) and (folder / "name").is_file() else None

    def _cancel(self, job_id: str) -> None:
        folder = self._folder(job_id)
        if folder is None:
            raise SchedulerError(f"local: no job {job_id!r} under {self.root}")
        if self._state(folder, ProcessTable.snapshot()).is_finished():
            return
        (folder / "cancelled").touch()
        end_job(job_id, _wait_for_pid(folder), grace=KILL_GRACE)

    def reason(self, job_id: str) -> str:
        folder = self._folder(job_id)
        if folder is None:
            return f"local: no job {job_id!r} under {self.root}"
        exitcode = _read_number(folder / "exitcode", int)
        if (folder / "cancelled").exists():
            return "cancelled"
        walltime = _read_number(folder / "timeout", float)
        if walltime is not None and exitcode != 0:
            ending = "killed" if exitcode is None else _exit_text(exitcode)
            return f"walltime of {walltime / 60:g} min reached ({ending})"
        if exitcode is not None:
            return _exit_text(exitcode)
        if self._state(folder, ProcessTable.snapshot()) is JobState.FAILED:
            return (
                "the job's processes are gone without an exit code (killed, or the machine "
                "restarted)"
            )
        return "still running"


def _wait_for_pid(folder: Path) -> int | None:
    """The wrapper's pid; a wrapper still starting gets START_GRACE seconds to record it."""
    while (pid := _read_number(folder / "pid", int)) is None and _age(folder) < START_GRACE:
        time.sleep(0.05)
    return pid


def _age(folder: Path) -> float:
    """Seconds since the job was submitted (its name file was written)."""
    return time.time() - (folder / "name").stat().st_mtime


def _seconds(value: float) -> str:
    """Seconds as ``read -t`` takes them: ``7200``, ``0.5``."""
    return f"{value:.15g}"


def _exit_text(exitcode: int) -> str:
    return f"exit code {exitcode}" + (f" (signal {exitcode - 128})" if exitcode > 128 else "")


def _read_number(path: Path, convert: Callable[[str], _N]) -> _N | None:
    """The number a job file holds (exit code, pid, seconds), None when missing or garbled."""
    try:
        return convert(path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None
