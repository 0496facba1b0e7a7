"""Keeping the controller alive for weeks: detached, or as a self-renewing batch job.

Login nodes often kill long processes; the controller then runs elsewhere:

local
    :func:`detach` starts ``splinenas run`` in a new session (``nohup``-like:
    no terminal, no stdin) with its output appended to a log and its pid in a
    pid file.
Slurm
    a one-task job whose batch shell starts the controller and, on the
    ``--signal=B:USR2@margin`` warning before the time limit, stops it with
    SIGTERM (the controller finishes its cycle and commits) and runs
    ``scontrol requeue`` on itself: the same job id starts again. submitit's
    Checkpointable is not used: its signal handler exits the process from
    inside the handler, in the middle of a cycle, and its job states come from
    ``sacct``, which clusters without accounting do not answer.
LSF
    the same shell, warned with ``-wa USR2 -wt``, submits its own script again
    with ``bsub`` once the controller has stopped.
PBS and Flux
    the same shell, warned by its own alarm (:data:`nas.cluster.base.SELF_ALARM`)
    ``margin`` seconds before the walltime, submits its own script again with
    ``qsub`` / ``flux batch``. PBS sends no warning; Flux (0.51 and later)
    forwards ``--signal`` to the jobs inside the batch instance, and this one
    runs none (:data:`nas.cluster.flux.KEEPALIVE`).

The controller ignores USR2 (the shell sets that before starting it), so a
scheduler that signals every process of the job still stops it only through
the shell. Every value in a script is validated and shell-quoted.

Taking over the lock (:func:`take_over`): each run of the job records itself
in ``<run dir>/controller/keepalive.json`` (job id, host, pid) and then execs
the controller, which takes the state lock under that same pid. A lock left
behind on another host (a node that died, a job killed at its limit) can
only be broken safely if its holder is gone. The next run breaks it when
the lock names the recorded host and pid and the recorded job is over: it
is this very job (a requeued Slurm job keeps its id and only starts again
once its previous run has ended), or the scheduler reports that job finished
or no longer knows it. While the recorded job still runs (an LSF successor
that started early) the new run waits for it.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from nas.cluster.base import (  # noqa: F401 - KeepAliveError, KeepAliveJob: part of this API
    JobState,
    KeepAliveError,
    KeepAliveJob,
    Scheduler,
    backend_class,
)
from nas.cluster.proc import spawn_detached
from nas.cluster.render import directive_lines, write_job_script
from nas.pointdir import layout
from nas.pointdir.jsonio import atomic_write_bytes, atomic_write_json, read_json_object
from nas.record.lock import Holder, LockError, break_lock, holder_alive, lock_path, read_holder

#: Files of the controller in the run folder.
CONTROLLER = "controller"
MARKER = "keepalive.json"
LOG = "controller.log"
PID = "controller.pid"

_STILL_RUNNING = frozenset({JobState.PENDING, JobState.RUNNING, JobState.HELD, JobState.MISSING})

#: The keep-alive script after its directives; the backend's :class:`KeepAliveScript`
#: fills in how it learns its id, what it sets up and cleans up, and how it goes on.
#: The shell starts the controller with USR2 ignored, then turns the first USR2 into its
#: orderly stop: the controller finishes its cycle and commits. Only the first: a backend
#: with two sources (Flux: the script's own alarm and ``--signal``) may send two, and the
#: controller takes a second SIGTERM as "stop now" (:mod:`nas.control.loop`).
_FRAME = """\
#
# splinenas controller of {state}, kept alive by a batch job.
{how}
# Submit: {submit}
set -uo pipefail
cd {workdir} || exit 1
job_id={job_id}
{setup}trap '' USR2
{controller} &
controller=$!
stop=0
trap 'if [ "$stop" = 0 ]; then stop=1; kill -TERM "$controller" 2>/dev/null; fi' USR2
while kill -0 "$controller" 2>/dev/null; do
    wait "$controller"  # returns early when USR2 arrives
done
wait "$controller"  # bash keeps the exit status of an ended child
status=$?
{cleanup}if [ "$stop" = 1 ] && [ "$status" = 0 ]; then
    echo "splinenas: time limit near; job $job_id stopped the controller and hands over" >&2
    {resubmit}
fi
exit "$status"
"""


def controller_argv(
    state_path: str | os.PathLike, poll: float, *, keepalive: bool = False, python: str = ""
) -> list[str]:
    """The controller's command line: ``splinenas run``, or one run of a keep-alive job.

    The one place that spells it, for the detached controller, the keep-alive
    job's script (which appends ``--job-id``: only the job knows its id) and
    the ``exec`` of each of its runs. ``python`` defaults to this interpreter.
    """
    action = ["controller", "job"] if keepalive else ["run"]
    state = ["--state", str(state_path), "--poll", f"{poll:g}"]
    return [python or sys.executable, "-m", "nas", *action, *state]


def controller_dir(state_path: str | os.PathLike) -> Path:
    """``<run dir>/controller/``: the keep-alive script, its log, pid and marker."""
    return layout.run_dir(state_path) / CONTROLLER


# ---------------------------------------------------------------------------- local


def detach(argv: list[str], log_path: str | os.PathLike, pid_path: str | os.PathLike) -> int:
    """Start ``argv`` detached from this session; return its pid.

    The process gets a new session (no terminal, so no hang-up), no stdin,
    and stdout + stderr appended to ``log_path``; its pid is written
    atomically to ``pid_path``.

    Raises:
        KeepAliveError: ``pid_path`` names a process that still runs.
    """
    pid_path, log_path = Path(pid_path), Path(log_path)
    running = running_pid(pid_path)
    if running is not None:
        raise KeepAliveError(f"{pid_path} names process {running}, which still runs")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    child = spawn_detached(argv, cwd=Path.cwd(), log_path=log_path)
    atomic_write_bytes(pid_path, f"{child.pid}\n".encode())
    return child.pid


def detach_controller(state_path: str | os.PathLike, poll: float) -> tuple[int, list[str], Path]:
    """``splinenas run`` in the background (nohup-like); returns pid, argv and log path.

    The pid and log live in :func:`controller_dir`, so a second detached
    controller is refused before it even reaches the state's lock.
    """
    folder = controller_dir(state_path)
    state = str(Path(state_path).absolute())
    argv = controller_argv(state, poll)
    log_path = folder / LOG
    return detach(argv, log_path, folder / PID), argv, log_path


def running_pid(pid_path: str | os.PathLike) -> int | None:
    """The pid in ``pid_path`` if that process runs and started before the file was written."""
    path = Path(pid_path)
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
        written = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    holder = Holder(host=socket.gethostname(), pid=pid, started=written)
    return pid if holder_alive(holder) else None


# ---------------------------------------------------------------------------- job scripts


def render(job: KeepAliveJob, scheduler: Scheduler | None = None) -> str:
    """The keep-alive job script: the backend's directives, then the one frame it fills in.

    ``scheduler`` is the instance that will submit it, made from the experiment's
    ``[cluster]`` (:meth:`Scheduler.create`): its directives may carry site settings of
    the training jobs (PBS: ``-l filesystems``); without it, a plain one of the backend.

    Raises:
        KeepAliveError, ScriptError: a value that cannot go into the script.
    """
    job.check()
    if scheduler is None:
        backend = backend_class(job.backend)
        assert backend is not None  # job.check()
        scheduler = backend()
    assert scheduler.keepalive is not None and scheduler.directive_prefix is not None
    parts = scheduler.keepalive
    fields = {
        "script": shlex.quote(str(job.script_path)),
        "log": shlex.quote(str(job.log_path)),
        "margin": job.margin_seconds,
        "alarm": job.walltime_minutes * 60 - job.margin_seconds,
    }
    argv = controller_argv(job.state_path, job.poll, keepalive=True, python=job.python)
    body = _FRAME.format(
        state=str(job.state_path),
        how=textwrap.fill(
            parts.how.format(**fields), 78, initial_indent="# ", subsequent_indent="# "
        ),
        submit=parts.submit,
        workdir=shlex.quote(str(job.workdir)),
        job_id=parts.job_id.format(**fields),
        setup=_lines(parts.setup.format(**fields)),
        controller=shlex.join(argv) + ' --job-id "$job_id"',
        cleanup=_lines(parts.cleanup.format(**fields)),
        resubmit=parts.resubmit.format(**fields),
    )
    header = directive_lines(
        scheduler.directive_prefix,
        scheduler.keepalive_directives(job),
        job.controller.extra_directives,
        extra_key="controller.extra_directives",
    )
    return f"#!/bin/bash\n{header}\n{body}"


def _lines(text: str) -> str:
    """``text`` as whole lines (each ending in a newline); nothing for no text."""
    return "".join(f"{line}\n" for line in text.splitlines())


def submit(job: KeepAliveJob, scheduler: Scheduler) -> str:
    """Write the script (atomically, executable) and submit it; return the job id."""
    text = render(job, scheduler)
    job.script_path.parent.mkdir(parents=True, exist_ok=True)
    write_job_script(job.script_path, text)
    return scheduler.submit(job.script_path, job_name=job.job_name, cwd=job.workdir)


# ---------------------------------------------------------------------------- taking over


@dataclass(frozen=True)
class Incarnation:
    """One run of a keep-alive job, as recorded in the marker file."""

    job_id: str
    host: str
    pid: int
    started: float

    @classmethod
    def read(cls, path: Path) -> Incarnation | None:
        try:
            raw = read_json_object(path)
            return cls(str(raw["job_id"]), str(raw["host"]), int(raw["pid"]), float(raw["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, vars(self))


def record_incarnation(state_path: str | os.PathLike, job_id: str) -> Incarnation:
    """Record this process as the current run of keep-alive job ``job_id``."""
    me = Incarnation(job_id, socket.gethostname(), os.getpid(), time.time())
    me.write(controller_dir(state_path) / MARKER)
    return me


def take_over(
    state_path: str | os.PathLike,
    job_id: str,
    scheduler: Scheduler,
    *,
    wait_seconds: float = 600.0,
    interval: float = 10.0,
) -> str | None:
    """Break the lock left by an earlier run of the keep-alive job, if it is gone.

    Returns:
        What was done, or None when there is no such lock (a lock of anyone
        else is left for the controller to refuse, or to take over itself if
        its holder died on this host).

    Raises:
        LockError: the earlier run's job still runs after ``wait_seconds``.
    """
    holder = read_holder(lock_path(state_path))
    before = Incarnation.read(controller_dir(state_path) / MARKER)
    if holder is None or before is None or holder.host == socket.gethostname():
        return None
    if (holder.host, holder.pid) != (before.host, before.pid):
        return None
    if before.job_id != job_id:
        _wait_until_over(before.job_id, scheduler, wait_seconds, interval)
    break_lock(state_path, force=True)
    return f"took over the lock of job {before.job_id} ({holder.describe()}), which has ended"


def _wait_until_over(job_id: str, scheduler: Scheduler, wait: float, interval: float) -> None:
    deadline = time.monotonic() + wait
    while (state := scheduler.status([job_id])[job_id]) in _STILL_RUNNING:
        if time.monotonic() >= deadline:
            raise LockError(
                f"the state is locked by keep-alive job {job_id}, which is still "
                f"{state.value} after {wait:g} s"
            )
        time.sleep(interval)


def exec_controller(state_path: str | os.PathLike, poll: float) -> None:
    """Replace this process by ``splinenas run`` (same pid, as the marker says)."""
    argv = controller_argv(state_path, poll)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
