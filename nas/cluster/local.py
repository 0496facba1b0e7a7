"""The local backend: detached processes on this machine, no scheduler needed.

Each job gets a folder ``<root>/<job id>/`` holding its name, the pid of a
tiny wrapper shell and, once the job ends, its exit code. The wrapper starts
the script in a new session (so cancel can signal the whole process group)
and outlives the controller; a restarted controller reads the folders back.
Job ids embed the submission time and random bits, so they never repeat.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from nas.cluster.base import JobRecord, JobState, Scheduler, SchedulerError
from nas.cluster.proc import DEFAULT_TIMEOUT, spawn_detached
from nas.cluster.render import ScriptError, ranks_per_node
from nas.config import ClusterConfig

#: Writes its pid, runs the script, writes the exit code. A TERM (cancel) is
#: caught so the wrapper survives to record the script's status; a job
#: cancelled before its wrapper got going never starts.
WRAPPER = r"""
dir=$1
shift
finish() {
    printf '%s\n' "$1" >"$dir/exitcode.tmp" && mv "$dir/exitcode.tmp" "$dir/exitcode"
    exit "$1"
}
printf '%s\n' "$$" >"$dir/pid.tmp" && mv "$dir/pid.tmp" "$dir/pid"
[[ -e $dir/cancelled ]] && finish 143
trap : TERM
"$@" &
child=$!
wait "$child"
rc=$?
while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    rc=$?
done
finish "$rc"
"""

#: Seconds between SIGTERM and SIGKILL when cancelling.
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

    def __init__(self, root: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.root = Path(root).absolute()
        self._children: dict[str, subprocess.Popen] = {}

    @classmethod
    def create(cls, *, local_root: str | os.PathLike, timeout: float) -> LocalScheduler:
        return cls(local_root, timeout=timeout)

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
        argv = ["bash", "-c", WRAPPER, "splinenas-job", str(folder), "bash", str(script)]
        self._children[job_id] = spawn_detached(argv, cwd=cwd, log_path=folder / "output")
        return job_id

    def _query(self, job_ids: Sequence[str], job_names: Sequence[str]) -> list[JobRecord]:
        # Reap finished wrappers so that they do not linger as zombies.
        self._children = {i: c for i, c in self._children.items() if c.poll() is None}
        if job_names:
            folders = self._all_folders()
        else:
            folders = [self.root / i for i in job_ids if _JOB_ID.fullmatch(i)]
        return [self._record(folder) for folder in folders if (folder / "name").is_file()]

    def _all_folders(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def _record(self, folder: Path) -> JobRecord:
        name = (folder / "name").read_text(encoding="utf-8").strip()
        return JobRecord(folder.name, self._state(folder), name)

    def _state(self, folder: Path) -> JobState:
        exitcode = _read_int(folder / "exitcode")
        cancelled = (folder / "cancelled").exists()
        if exitcode is not None:
            if cancelled and exitcode != 0:
                return JobState.CANCELLED
            return JobState.COMPLETED if exitcode == 0 else JobState.FAILED
        pid = _read_int(folder / "pid")
        if pid is not None and _alive(pid, folder):
            return JobState.RUNNING
        if cancelled:
            return JobState.CANCELLED
        if pid is None and _age(folder) < START_GRACE:
            return JobState.PENDING
        return JobState.FAILED  # killed with its wrapper, or the machine went down

    def _folder(self, job_id: str) -> Path | None:
        """The job's folder, or None for an id this backend never gave out."""
        folder = self.root / job_id
        return folder if _JOB_ID.fullmatch(job_id) and (folder / "name").is_file() else None

    def _cancel(self, job_id: str) -> None:
        folder = self._folder(job_id)
        if folder is None:
            raise SchedulerError(f"local: no job {job_id!r} under {self.root}")
        if self._state(folder).is_finished():
            return
        (folder / "cancelled").touch()
        pid = _wait_for_pid(folder)
        if pid is None or not _alive(pid, folder):
            return
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        while time.monotonic() < deadline:
            if _read_int(folder / "exitcode") is not None or not _alive(pid, folder):
                return
            time.sleep(0.1)
        _signal_group(pid, signal.SIGKILL)

    def reason(self, job_id: str) -> str:
        folder = self._folder(job_id)
        if folder is None:
            return f"local: no job {job_id!r} under {self.root}"
        exitcode = _read_int(folder / "exitcode")
        if (folder / "cancelled").exists():
            return "cancelled"
        if exitcode is not None:
            return f"exit code {exitcode}" + (
                f" (signal {exitcode - 128})" if exitcode > 128 else ""
            )
        if self._state(folder) is JobState.FAILED:
            return (
                "the job's wrapper is gone without an exit code (killed, or the machine restarted)"
            )
        return "still running"


def _wait_for_pid(folder: Path) -> int | None:
    """The wrapper's pid; a wrapper still starting gets START_GRACE seconds to record it."""
    while (pid := _read_int(folder / "pid")) is None and _age(folder) < START_GRACE:
        time.sleep(0.05)
    return pid


def _age(folder: Path) -> float:
    """Seconds since the job was submitted (its name file was written)."""
    return time.time() - (folder / "name").stat().st_mtime


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int, folder: Path) -> bool:
    """True if ``pid`` is this job's wrapper and not a zombie (pids get reused)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return os.fsencode(folder) in handle.read().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a plain existence check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
