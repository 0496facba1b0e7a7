"""PBS Professional / OpenPBS with PALS ``mpiexec`` (ALCF Polaris, Aurora).

``qsub`` submits and prints the job id (``1234.server``); one ``qstat -x -f
-F json`` per poll reports every job asked for, finished ones included while
the server keeps job history (``job_history_enable``, two weeks by default);
``qdel`` cancels. PBS reports a finished job as ``F`` and leaves how it ended
to two attributes, both read here:

* ``substate`` 91 (``JOB_SUBSTATE_TERMINATED``): deleted with ``qdel``,
  queued or running; 92 finished, 93 failed, 94 moved to another server
  (OpenPBS ``src/include/job.h``, ``svr_setjob_histinfo``).
* ``Exit_status``: the job script's status; ``256 + N`` when signal N killed
  it; negative values are PBS's own ``JOB_EXEC_*`` codes, among them -29
  ``JOB_EXEC_KILL_WALLTIME`` (the walltime), -27 ``JOB_EXEC_KILL_MEM`` and
  -26 ``JOB_EXEC_KILL_VMEM`` (memory limits), -28 ``JOB_EXEC_KILL_CPUT``.

PBS sends no warning signal before the walltime (Slurm's ``--signal``, LSF's
``-wa``/``-wt`` have no PBS counterpart): the trainer stops by its own
``--deadline``, and the keep-alive job sets its own alarm. PBS is tested
against the fake ``qsub``/``qstat``/``qdel``/``mpiexec`` in ``tests/fakes``.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.cluster.base import (
    SELF_ALARM,
    SELF_ALARM_CLEANUP,
    Directive,
    JobRecord,
    JobState,
    KeepAliveScript,
    Scheduler,
    SchedulerError,
    translate,
)
from nas.cluster.proc import DEFAULT_TIMEOUT, CommandError, run_command
from nas.cluster.render import ScriptError, cores_per_rank, optional_directives, ranks_per_node
from nas.config import ClusterConfig

if TYPE_CHECKING:
    from nas.cluster.keepalive import KeepAliveJob

log = logging.getLogger(__name__)

#: qstat ``job_state`` -> JobState; F and X are refined by :func:`finished_state`.
PBS_STATES: dict[str, JobState] = {
    "Q": JobState.PENDING,  # queued
    "W": JobState.PENDING,  # waiting for its execution time
    "T": JobState.PENDING,  # being moved to a new location
    "R": JobState.RUNNING,
    "E": JobState.RUNNING,  # exiting after having run
    "B": JobState.RUNNING,  # an array job that has begun
    "H": JobState.HELD,
    "S": JobState.HELD,  # suspended
    "U": JobState.HELD,  # cycle-harvesting job suspended for keyboard activity
    "M": JobState.UNKNOWN,  # moved to another server: no longer this server's job
    "F": JobState.COMPLETED,  # finished (history)
    "X": JobState.COMPLETED,  # finished subjob of an array
}

#: ``substate`` of a finished job deleted with qdel (OpenPBS JOB_SUBSTATE_TERMINATED).
SUBSTATE_TERMINATED = 91
#: ``substate`` of a job moved to another server (JOB_SUBSTATE_MOVED).
SUBSTATE_MOVED = 94
#: Negative ``Exit_status`` codes (OpenPBS ``JOB_EXEC_*``) that are no plain failure.
PBS_EXIT_CODES: dict[int, JobState] = {
    -29: JobState.TIMEOUT,  # JOB_EXEC_KILL_WALLTIME
    -27: JobState.OUT_OF_MEMORY,  # JOB_EXEC_KILL_MEM
    -26: JobState.OUT_OF_MEMORY,  # JOB_EXEC_KILL_VMEM
}

_JOB_ID = re.compile(r"^\d+(?:\[\d*\])?(?:\.[A-Za-z0-9_.-]+)?$")
#: qstat's complaints about an id that are an answer (no such job), not a failure.
_NO_SUCH_JOB = ("Unknown Job Id", "Job has finished")


def parse_qsub(stdout: str) -> str:
    """The job id from qsub's answer (``1234.polaris-pbs-01``)."""
    lines = stdout.strip().splitlines()
    line = lines[-1].strip() if lines else ""
    if not _JOB_ID.fullmatch(line):
        raise SchedulerError(f"pbs: qsub answered no job id: {stdout.strip()!r}")
    return line


def _integer(value: Any) -> int | None:
    """qstat's JSON holds numbers as numbers; older servers as text."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def finished_state(attributes: Mapping[str, Any]) -> JobState:
    """How a finished (F or X) job ended: deleted, timed out, killed for memory, or by its status."""
    substate = _integer(attributes.get("substate"))
    if substate == SUBSTATE_TERMINATED:
        return JobState.CANCELLED
    if substate == SUBSTATE_MOVED:
        return JobState.UNKNOWN
    status = _integer(attributes.get("Exit_status"))
    if status is None:
        return JobState.FAILED  # ended without running to an exit status
    if status == 0:
        return JobState.COMPLETED
    return PBS_EXIT_CODES.get(status, JobState.FAILED)


def parse_qstat(stdout: str, user: str | None = None) -> list[JobRecord]:
    """Records from ``qstat -x -f -F json``; with ``user``, only jobs that user owns."""
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"pbs: qstat answered no JSON ({exc})") from None
    jobs = document.get("Jobs", {}) if isinstance(document, dict) else None
    if not isinstance(jobs, dict):
        raise SchedulerError("pbs: qstat's JSON has no 'Jobs' table")
    records = []
    for job_id, attributes in jobs.items():
        if not isinstance(attributes, dict):
            continue
        owner = str(attributes.get("Job_Owner", ""))
        if user is not None and owner.split("@", 1)[0] != user:
            continue
        code = str(attributes.get("job_state", ""))
        state = translate(code, PBS_STATES, "pbs")
        if code in ("F", "X"):
            state = finished_state(attributes)
        records.append(JobRecord(job_id, state, str(attributes.get("Job_Name", ""))))
    return records


def walltime(minutes: int) -> str:
    """``-l walltime`` as HH:MM:SS."""
    hours, rest = divmod(minutes, 60)
    return f"{hours:02d}:{rest:02d}:00"


def _output_path(path: str, what: str) -> str:
    """qsub reads ``-o``/``-e`` as ``[host:]path``: a ':' in the path would name a host."""
    if ":" in path:
        raise ScriptError(f"{what}: PBS reads {path!r} as host:path; use a path without ':'")
    return path


def in_workdir(text: str, cwd: Path) -> str:
    """``text`` with ``cd <cwd>`` after its leading comments (``#PBS`` lines stay on top).

    PBS has no option for the working directory (like sbatch ``--chdir`` or
    bsub ``-cwd``); the job scripts ``cd`` themselves, any other script gets it here.
    """
    lines = text.splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")),
              len(lines))  # fmt: skip
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    return "".join([*lines[:at], f"cd {shlex.quote(str(cwd))} || exit 1\n", *lines[at:]])


def _named_filesystems(directives: Sequence[str]) -> str | None:
    """The value of a ``-l filesystems=...`` among extra directives (``init`` accepts one)."""
    for line in directives:
        compact = line.replace(" ", "")
        if compact.startswith("-lfilesystems="):
            return compact.split("=", 1)[1]
    return None


def filesystems_of(cluster: ClusterConfig) -> str | None:
    """The file systems the training jobs name: ``[cluster] filesystems`` or their directive."""
    return cluster.filesystems or _named_filesystems(cluster.extra_directives)


#: The keep-alive job: PBS sends no warning, so the shell sets its own alarm.
KEEPALIVE = KeepAliveScript(
    how="PBS sends no warning before the walltime, so this shell raises USR2 itself {margin} s "
    "before it; the controller stops after its cycle and this script is submitted again.",
    submit="qsub <this file>",
    job_id="${{PBS_JOBID:?not a PBS job}}",
    setup=f"exec >>{{log}} 2>&1\n{SELF_ALARM}",
    cleanup=SELF_ALARM_CLEANUP,
    resubmit="qsub {script}",
)


class PbsScheduler(Scheduler):
    """Jobs on a PBS Professional / OpenPBS server, ranks started by PALS ``mpiexec``."""

    name = "pbs"
    directive_prefix = "#PBS"
    optional_keys = {"-A": "account", "-q": "queue"}
    other_keys = frozenset({"constraint", "filesystems", "cpu_bind"})  # select chunk, -l, mpiexec
    keepalive = KEEPALIVE
    controller_keys = {"-A ": "account", "-q ": "queue"}
    controller_other_keys = frozenset({"cores"})  # in the select chunk

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        user: str | None = None,
        filesystems: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout)
        self.user = user or getpass.getuser()
        #: The training jobs' ``-l filesystems`` value, for the keep-alive job too.
        self.filesystems = filesystems

    @classmethod
    def create(
        cls, *, cluster: ClusterConfig, local_root: str | os.PathLike, timeout: float
    ) -> PbsScheduler:
        """An instance that knows the file systems the experiment's jobs name."""
        return cls(timeout=timeout, filesystems=filesystems_of(cluster))

    @staticmethod
    def job_directives(cluster: ClusterConfig, common: Mapping[str, str]) -> list[Directive]:
        """``-l select=N[:constraint]`` with one chunk per node, the walltime, logs kept in place.

        ``-k doe`` writes the logs straight to their destination while the
        job runs (no spool copy at the end), so ``splinenas show`` sees them.
        """
        select = f"select={cluster.nodes}" + (
            f":{cluster.constraint}" if cluster.constraint else ""
        )
        stdout = _output_path(common["stdout"], "stdout_path")
        pairs: list[Directive] = [
            ("-N", common["job_name"]),
            ("-l", select),
            ("-l", "place=scatter"),
            ("-l", f"walltime={walltime(cluster.walltime_minutes)}"),
            ("-k", "doe"),
            ("-o", stdout),
        ]
        if cluster.filesystems is not None:
            pairs.append(("-l", f"filesystems={cluster.filesystems}"))
        if common["stderr"] == common["stdout"]:
            pairs.append(("-j", "oe"))
        else:
            pairs.append(("-e", _output_path(common["stderr"], "stderr_path")))
        pairs += optional_directives(cluster, PbsScheduler.optional_keys)
        return [(f"{flag} ", value) for flag, value in pairs]

    @staticmethod
    def launcher_argv(cluster: ClusterConfig, python: str) -> list[str]:
        """PALS: ``mpiexec -n N*R --ppn R --depth D --cpu-bind depth``: D cores per rank, bound;
        with ``[cluster] cpu_bind``, ``--cpu-bind <it>`` instead of the depth binding.

        Depth binding hands out cores in order, so on a two-socket node whose
        cores do not split evenly by D a rank straddles the sockets (Aurora, 12
        ranks of 8: ALCF's "Running jobs on Aurora" calls it a misconfiguration
        and binds by ``list:...`` instead, each rank on the socket of its GPU tile).
        """
        ranks = ranks_per_node(cluster)
        binding = (
            ["--cpu-bind", cluster.cpu_bind]
            if cluster.cpu_bind
            else ["--depth", str(cores_per_rank(cluster)), "--cpu-bind", "depth"]
        )
        return ["mpiexec", "-n", str(cluster.nodes * ranks), "--ppn", str(ranks),
                *binding, python]  # fmt: skip

    def keepalive_directives(self, job: KeepAliveJob) -> list[Directive]:
        """One chunk of ``[controller] cores`` cores; the log is appended to by the script.

        The training jobs' ``-l filesystems`` too (an instance method for that): ALCF's
        qsub refuses a job without it, "qsub: Resource: filesystems is required to be
        set." (argonne-lcf/user-guides ``docs/running-jobs/index.md``), and this job
        resubmits itself with plain ``qsub``. A ``-l filesystems=`` in ``[controller]
        extra_directives`` wins.
        """
        controller = job.controller
        pairs: list[Directive] = [
            ("-N ", job.job_name),
            ("-l ", f"select=1:ncpus={controller.cores}"),
            ("-l ", f"walltime={walltime(job.walltime_minutes)}"),
            ("-o ", "/dev/null"),
            ("-j ", "oe"),
        ]
        if _named_filesystems(controller.extra_directives) is None:
            pairs += self._filesystems_directive()
        return pairs + optional_directives(controller, PbsScheduler.controller_keys)

    def _filesystems_directive(self) -> list[Directive]:
        """``-l filesystems=<the training jobs'>``; none, with a warning, when they name none."""
        if self.filesystems is None:
            log.warning(
                "pbs: the keep-alive job names no file systems ([cluster] filesystems is not "
                "set): ALCF's qsub refuses such a job; set [cluster] filesystems, or add "
                "'-l filesystems=...' to [controller] extra_directives"
            )
            return []
        return [("-l ", f"filesystems={self.filesystems}")]

    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        """On stdin, so the job can start in ``cwd``: PBS starts every job in ``$HOME``."""
        text = in_workdir(script.read_text(encoding="utf-8"), cwd)
        done = run_command(["qsub", "-N", job_name], input_text=text, timeout=self.timeout, cwd=cwd)
        return parse_qsub(done.stdout)

    def _query(self, job_ids: Sequence[str], job_names: Sequence[str]) -> list[JobRecord]:
        """The jobs asked for by id; every job of this user when names are asked for."""
        selection = [] if job_names else list(job_ids)
        return parse_qstat(self._qstat(selection), user=self.user if job_names else None)

    def _qstat(self, job_ids: Sequence[str]) -> str:
        """``qstat -x -f -F json``; ids PBS no longer knows are left out, not a failure."""
        argv = ["qstat", "-x", "-f", "-F", "json", *job_ids]
        done = run_command(argv, timeout=self.timeout, check=False)
        complaints = [line for line in done.stderr.splitlines() if line.strip()]
        if done.returncode != 0 and (
            not complaints or not all(any(s in c for s in _NO_SUCH_JOB) for c in complaints)
        ):
            raise CommandError(argv, f"exited with status {done.returncode}",
                               returncode=done.returncode, stdout=done.stdout, stderr=done.stderr)  # fmt: skip
        return done.stdout if done.stdout.strip() else "{}"

    def _confirm(self, job_ids: Sequence[str]) -> dict[str, JobRecord | None]:
        """Asked by id, PBS names each job it no longer has ("Unknown Job Id")."""
        found = {r.job_id: r for r in parse_qstat(self._qstat(job_ids))}
        return {i: found.get(i) for i in job_ids}

    def _cancel(self, job_id: str) -> None:
        run_command(["qdel", job_id], timeout=self.timeout)

    def reason(self, job_id: str) -> str:
        try:
            jobs = json.loads(self._qstat([job_id])).get("Jobs", {})
        except (CommandError, ValueError, AttributeError) as exc:
            return f"pbs: no record of job {job_id} ({exc})"
        attributes = jobs.get(job_id) if isinstance(jobs, dict) else None
        if not isinstance(attributes, dict):
            return f"pbs: no record of job {job_id}"
        keys = ("job_state", "substate", "Exit_status", "comment")
        return " ".join(f"{key}={attributes[key]}" for key in keys if key in attributes)
