"""Slurm: sbatch to submit, squeue (and sacct where accounting exists) to poll.

``squeue -t all`` lists finished jobs only until ``MinJobAge`` purges them;
``sacct`` remembers them for good but only on clusters with accounting
(slurmdbd). Without it sacct says "accounting storage is disabled": this
backend notices once and stops asking. A job that neither lists is asked
about by id with ``scontrol show job``: only its "Invalid job id" makes the job
gone (UNKNOWN, and the controller decides from the result file); a job that
squeue merely left out keeps the state scontrol reports.
"""

from __future__ import annotations

import getpass
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nas.cluster.base import (
    Directive,
    JobRecord,
    JobState,
    KeepAliveScript,
    Scheduler,
    SchedulerError,
    translate,
)
from nas.cluster.proc import DEFAULT_TIMEOUT, CommandError, run_command
from nas.cluster.render import (
    ScriptError,
    cores_per_rank,
    optional_directives,
    ranks_per_node,
    signal_seconds,
)
from nas.config import ClusterConfig

if TYPE_CHECKING:
    from nas.cluster.keepalive import KeepAliveJob

log = logging.getLogger(__name__)

#: Slurm's long job state names (squeue %T, sacct State) -> JobState.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESIZING": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "BOOT_FAIL": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "REVOKED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "PREEMPTED": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "SUSPENDED": JobState.HELD,
    "STOPPED": JobState.HELD,
    "REQUEUE_HOLD": JobState.HELD,
    "RESV_DEL_HOLD": JobState.HELD,
}

_NO_ACCOUNTING = "accounting storage is disabled"
#: scontrol's answer for a job slurmctld no longer has (purged after MinJobAge).
_INVALID_JOB = "Invalid job id specified"
_JOB_ID = re.compile(r"^(\d+(?:_\d+)?)(?:;\S+)?$")
_SCONTROL_FIELDS = ("JobId", "JobName", "JobState", "Reason", "ExitCode", "RunTime", "TimeLimit")
_REASON_FIELDS = _SCONTROL_FIELDS[2:]


def parse_state(code: str) -> JobState:
    """``"CANCELLED by 1000"`` or ``"RUNNING"`` -> JobState (first word counts)."""
    words = code.split()
    return translate(words[0].rstrip("+") if words else "", SLURM_STATES, "slurm")


def parse_sbatch(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` (``"123"`` or ``"123;cluster"``)."""
    line = stdout.strip().splitlines()[-1].strip() if stdout.strip() else ""
    match = _JOB_ID.fullmatch(line)
    if not match:
        raise SchedulerError(f"slurm: sbatch answered no job id: {stdout.strip()!r}")
    return match.group(1)


def parse_listing(stdout: str) -> list[JobRecord]:
    """Records from lines ``ID|STATE|NAME`` (squeue ``-o %i|%T|%j`` or sacct ``-P``)."""
    records = []
    for line in stdout.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) != 3 or not parts[0]:
            continue
        job_id, state, name = parts
        if "." in job_id:  # sacct lists steps too without -X
            continue
        records.append(JobRecord(job_id, parse_state(state), name))
    return records


def parse_scontrol(stdout: str) -> dict[str, str]:
    """``Key=Value`` pairs of ``scontrol show job -o``, for the reason of a job."""
    pairs = {}
    for token in stdout.split():
        key, sep, value = token.partition("=")
        if sep and key in _SCONTROL_FIELDS:
            pairs[key] = value
    return pairs


#: The keep-alive job: requeues itself (same job id) before its time limit.
KEEPALIVE = KeepAliveScript(
    how="Slurm sends USR2 {margin} s before the time limit; the controller stops after its "
    "cycle and the job requeues itself.",
    submit="sbatch <this file>",
    job_id="${{SLURM_JOB_ID:?not a Slurm job}}",
    # The jobs the controller submits must not inherit this job's allocation.
    setup="""\
for name in $(compgen -e); do
    case $name in SLURM_* | SBATCH_* | SRUN_* | SALLOC_*) unset "$name" ;; esac
done""",
    resubmit='scontrol requeue "$job_id"',
)


def _gpu_options(cluster: ClusterConfig) -> list[tuple[str, str]]:
    """All GPUs of a node to every task, or with ``gpu_bind`` one GPU per task, bound.

    A task bound to one GPU sees only it (``CUDA_VISIBLE_DEVICES`` holds one
    index), and the trainer then uses ``cuda:0``.
    """
    if not cluster.gpus_per_node:
        return []
    if cluster.gpu_bind is None:
        return [("--gpus-per-node", str(cluster.gpus_per_node))]
    if ranks_per_node(cluster) != cluster.gpus_per_node:
        raise ScriptError(
            f"cluster.gpu_bind gives each rank one GPU; cluster.ranks_per_node is "
            f"{cluster.ranks_per_node}, cluster.gpus_per_node is {cluster.gpus_per_node}",
            "cluster.gpu_bind",
        )
    return [("--gpus-per-task", "1"), ("--gpu-bind", cluster.gpu_bind)]


def _task_count(cluster: ClusterConfig) -> list[tuple[str, str]]:
    """``--ntasks`` for a GPU-per-task layout: sbatch's manual asks for a task count with
    ``--gpus-per-task``, and OLCF's Frontier examples give one."""
    if cluster.gpus_per_node and cluster.gpu_bind is not None:
        return [("--ntasks", str(cluster.nodes * ranks_per_node(cluster)))]
    return []


class SlurmScheduler(Scheduler):
    """Jobs on a Slurm cluster, polled with one squeue call per cycle."""

    name = "slurm"
    directive_prefix = "#SBATCH"
    optional_keys = {"--account": "account", "--partition": "queue", "--qos": "qos",
                     "--constraint": "constraint", "--mem": "mem"}  # fmt: skip
    other_keys = frozenset({"gpu_bind", "cpu_bind"})
    keepalive = KEEPALIVE
    controller_keys = {"--account=": "account", "--partition=": "queue", "--qos=": "qos"}
    controller_other_keys = frozenset({"cores"})

    @staticmethod
    def job_directives(cluster: ClusterConfig, common: Mapping[str, str]) -> list[Directive]:
        pairs: list[Directive] = [
            ("--job-name", common["job_name"]),
            ("--chdir", common["point_dir"]),
            ("--output", common["stdout"]),
            ("--error", common["stderr"]),
            ("--nodes", str(cluster.nodes)),
            ("--ntasks-per-node", str(ranks_per_node(cluster))),
            ("--cpus-per-task", str(cores_per_rank(cluster))),
            ("--time", str(cluster.walltime_minutes)),
        ]
        pairs += [(flag, value) for flag, value in _gpu_options(cluster)]
        pairs += _task_count(cluster)
        if cluster.signal_seconds:
            pairs.append(("--signal", f"B:USR2@{signal_seconds(cluster)}"))
        pairs += optional_directives(cluster, SlurmScheduler.optional_keys)
        return [(f"{flag}=", value) for flag, value in pairs]

    @staticmethod
    def launcher_argv(cluster: ClusterConfig, python: str) -> list[str]:
        return [
            "srun",
            f"--nodes={cluster.nodes}",
            f"--ntasks-per-node={ranks_per_node(cluster)}",
            f"--cpus-per-task={cores_per_rank(cluster)}",
            *(f"{flag}={value}" for flag, value in _gpu_options(cluster) if cluster.gpu_bind),
            *(f"{flag}={value}" for flag, value in _task_count(cluster)),
            *([f"--cpu-bind={cluster.cpu_bind}"] if cluster.cpu_bind else []),
            "--kill-on-bad-exit=1",
            python,
        ]

    @staticmethod
    def keepalive_directives(job: KeepAliveJob) -> list[Directive]:
        """One task with a core or two and no GPU: the controller is one Python process."""
        controller = job.controller
        pairs: list[Directive] = [
            ("--job-name=", job.job_name),
            ("--chdir=", str(job.workdir)),
            ("--output=", SlurmScheduler.literal_filename(str(job.log_path))),
            ("--open-mode=", "append"),
            ("--nodes=", "1"),
            ("--ntasks=", "1"),
            ("--cpus-per-task=", str(controller.cores)),
            ("--gpus=", "0"),
            ("--time=", str(job.walltime_minutes)),
            ("--signal=", f"B:USR2@{job.margin_seconds}"),
            ("--requeue", None),
        ]
        return pairs + optional_directives(controller, SlurmScheduler.controller_keys)

    @staticmethod
    def literal_filename(path: str) -> str:
        """``%%`` for each ``%``: sbatch replaces ``%j``, ``%x``, ``%A``... and reads ``%%`` as ``%``.

        A name holding a backslash is taken as it is, replacements and all.
        """
        return path if "\\" in path else path.replace("%", "%%")

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, user: str | None = None) -> None:
        super().__init__(timeout=timeout)
        self.user = user or getpass.getuser()
        self._accounting: bool | None = None

    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        done = run_command(
            ["sbatch", "--parsable", f"--job-name={job_name}", f"--chdir={cwd}", str(script)],
            timeout=self.timeout,
            cwd=cwd,
        )
        return parse_sbatch(done.stdout)

    def _query(self, job_ids: Sequence[str], job_names: Sequence[str]) -> list[JobRecord]:
        done = run_command(
            ["squeue", "-h", "-t", "all", "-u", self.user, "-o", "%i|%T|%j"],
            timeout=self.timeout,
        )
        records = parse_listing(done.stdout)
        seen_ids = {r.job_id for r in records}
        seen_names = {r.name for r in records}
        missing_ids = [i for i in job_ids if i not in seen_ids]
        missing_names = [n for n in job_names if n not in seen_names]
        if missing_ids:
            records += self._sacct(["-j", ",".join(missing_ids)])
        if missing_names:
            records += self._sacct(["--name", ",".join(missing_names), "-S", "now-30days"])
        return records

    def _sacct(self, selection: list[str]) -> list[JobRecord]:
        """Finished jobs from accounting; nothing where the cluster keeps none."""
        if self._accounting is False:
            return []
        argv = ["sacct", "-X", "-n", "-P", "-u", self.user, "-o", "jobid,state,jobname"]
        try:
            done = run_command([*argv, *selection], timeout=self.timeout)
        except CommandError as exc:
            if _NO_ACCOUNTING in exc.stderr + exc.stdout:
                log.info("slurm: accounting is disabled; purged jobs will read as UNKNOWN")
                self._accounting = False
                return []
            raise
        self._accounting = True
        return parse_listing(done.stdout)

    def _confirm(self, job_ids: Sequence[str]) -> dict[str, JobRecord | None]:
        """Ask slurmctld by id about jobs squeue and sacct left out."""
        confirmed: dict[str, JobRecord | None] = {}
        for job_id in job_ids:
            argv = ["scontrol", "show", "job", "-o", job_id]
            try:
                done = run_command(argv, timeout=self.timeout)
            except CommandError as exc:
                if _INVALID_JOB in exc.stderr + exc.stdout:
                    confirmed[job_id] = None
                continue
            pairs = parse_scontrol(done.stdout)
            if pairs.get("JobId") == job_id and "JobState" in pairs:
                state = parse_state(pairs["JobState"])
                confirmed[job_id] = JobRecord(job_id, state, pairs.get("JobName", ""))
        return confirmed

    def _cancel(self, job_id: str) -> None:
        run_command(["scancel", job_id], timeout=self.timeout)

    def reason(self, job_id: str) -> str:
        try:
            done = run_command(["scontrol", "show", "job", "-o", job_id], timeout=self.timeout)
        except CommandError as exc:
            return self._sacct_reason(job_id) or f"slurm: no record of job {job_id} ({exc})"
        pairs = parse_scontrol(done.stdout)
        return " ".join(f"{key}={pairs[key]}" for key in _REASON_FIELDS if key in pairs)

    def _sacct_reason(self, job_id: str) -> str:
        if self._accounting is False:
            return ""
        argv = ["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "state,exitcode,elapsed"]
        try:
            line = run_command(argv, timeout=self.timeout).stdout.strip()
        except CommandError:
            return ""
        if not line:
            return ""
        state, exitcode, elapsed = (line.splitlines()[0].split("|") + ["", "", ""])[:3]
        return f"JobState={state} ExitCode={exitcode} Elapsed={elapsed}"
