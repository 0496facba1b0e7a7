"""IBM Spectrum LSF: bsub to submit, bjobs to poll, bkill to cancel.

``bsub`` reads ``#BSUB`` directives only from a script on stdin, so the script
goes there. ``bjobs -a`` lists the user's jobs, finished ones included until
LSF cleans them (``CLEAN_PERIOD``, an hour by default). LSF reports every
job that did not exit 0 as EXIT; its ``exit_reason`` (``TERM_OWNER``,
``TERM_RUNLIMIT``, ...) tells a cancelled or timed-out job from a failed one. LSF is closed software:
the tests run this backend against the fake commands in ``tests/fakes``.
"""

from __future__ import annotations

import math
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
from nas.cluster.proc import CommandError, run_command
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

#: bjobs STAT -> JobState.
LSF_STATES: dict[str, JobState] = {
    "PEND": JobState.PENDING,
    "PROV": JobState.PENDING,
    "WAIT": JobState.PENDING,
    "RUN": JobState.RUNNING,
    "DONE": JobState.COMPLETED,
    "EXIT": JobState.FAILED,
    "ZOMBI": JobState.FAILED,
    "PSUSP": JobState.HELD,
    "USUSP": JobState.HELD,
    "SSUSP": JobState.HELD,
    "UNKWN": JobState.UNKNOWN,
}

#: EXIT with one of these termination reasons is not a plain failure of the job.
LSF_EXIT_REASONS: dict[str, JobState] = {
    "TERM_OWNER": JobState.CANCELLED,
    "TERM_ADMIN": JobState.CANCELLED,
    "TERM_FORCE_OWNER": JobState.CANCELLED,
    "TERM_FORCE_ADMIN": JobState.CANCELLED,
    "TERM_RUNLIMIT": JobState.TIMEOUT,
    "TERM_PREEMPT": JobState.TIMEOUT,
    "TERM_MEMLIMIT": JobState.OUT_OF_MEMORY,
}

#: bjobs columns; the free-text ones are separated by a character names never hold.
BJOBS_FORMAT = "jobid stat exit_reason job_name delimiter='|'"

_TERM_CODE = re.compile(r"\bTERM_[A-Z_]+")
_SUBMITTED = re.compile(r"Job <(\d+(?:\[\d+\])?)> is submitted")
_NO_JOBS = ("No job found", "No unfinished job found", "No matching job found")


def parse_bsub(stdout: str) -> str:
    """The job id from ``Job <123> is submitted to queue <batch>.``."""
    match = _SUBMITTED.search(stdout)
    if not match:
        raise SchedulerError(f"lsf: bsub answered no job id: {stdout.strip()!r}")
    return match.group(1)


def parse_bjobs(stdout: str) -> list[JobRecord]:
    """Records from ``bjobs -noheader -o BJOBS_FORMAT`` lines (``id|stat|reason|name``)."""
    records = []
    for line in stdout.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        job_id, stat, exit_reason, name = parts
        records.append(JobRecord(job_id, _state(stat, exit_reason), name))
    return records


def _state(stat: str, exit_reason: str) -> JobState:
    """STAT, refined for EXIT by LSF's termination reason (killed, run limit, ...)."""
    state = translate(stat, LSF_STATES, "lsf")
    if state is JobState.FAILED:
        code = _TERM_CODE.search(exit_reason)
        if code:
            return LSF_EXIT_REASONS.get(code.group(0), state)
    return state


#: The keep-alive job: submits its own script again before its run limit.
KEEPALIVE = KeepAliveScript(
    how="LSF sends USR2 before the run limit (-wa/-wt); the controller stops after its cycle "
    "and this script is submitted again.",
    submit="bsub < <this file>",
    job_id="${{LSB_JOBID:?not an LSF job}}",
    resubmit="bsub <{script}",
)


def _walltime(minutes: int) -> str:
    """``-W`` takes hours:minutes."""
    hours, rest = divmod(minutes, 60)
    return f"{hours}:{rest:02d}"


#: What bsub replaces in a path, with no escape for any (IBM Spectrum LSF 10.1, ``bsub -o``,
#: ``-e``: %J job id, %I array index; ``bsub -cwd`` besides: %JG job group, %EJ/%EI the
#: execution job id and index, %P project, %U user, %G user group, %H first host). A
#: ``-cwd`` with one also makes LSF create the folder it names.
_LOG_PATTERNS = re.compile(r"%[JI]")
_CWD_PATTERNS = re.compile(r"%(?:JG|EJ|EI|[JIPUGH])")


def _literal(path: str, patterns: re.Pattern[str], what: str) -> str:
    """``path`` when bsub keeps it as is; else the refusal, naming what it would replace."""
    found = sorted(set(patterns.findall(path)))
    if found:
        them = "them" if len(found) > 1 else "it"
        raise ScriptError(
            f"LSF would replace {' and '.join(found)} in the {what} {path!r} and has no "
            f"escape for {them}; use a state path without {them}"
        )
    return path


def _literal_directory(path: str) -> str:
    """A ``-cwd`` folder bsub keeps as is (see :data:`_CWD_PATTERNS`)."""
    return _literal(path, _CWD_PATTERNS, "working folder")


class LsfScheduler(Scheduler):
    """Jobs on an LSF cluster (e.g. Summit-like machines with jsrun)."""

    name = "lsf"
    directive_prefix = "#BSUB"
    optional_keys = {"-P": "account", "-q": "queue", "-alloc_flags": "alloc_flags"}
    other_keys = frozenset({"resource_sets", "jsrun_smpiargs"})
    keepalive = KEEPALIVE
    controller_keys = {"-P ": "account", "-q ": "queue"}  # a whole node: no cores to ask for

    @staticmethod
    def job_directives(cluster: ClusterConfig, common: Mapping[str, str]) -> list[Directive]:
        pairs: list[Directive] = [
            ("-J", common["job_name"]),
            ("-cwd", _literal_directory(common["point_dir"])),
            ("-o", common["stdout"]),
            ("-e", common["stderr"]),
            ("-nnodes", str(cluster.nodes)),
            ("-W", _walltime(cluster.walltime_minutes)),
        ]
        if cluster.signal_seconds:
            # LSF's warning time has minute granularity: warn no later than asked.
            warn = str(math.ceil(signal_seconds(cluster) / 60))
            pairs += [("-wa", "USR2"), ("-wt", warn)]
        pairs += optional_directives(cluster, LsfScheduler.optional_keys)
        return [(f"{flag} ", value) for flag, value in pairs]

    @staticmethod
    def launcher_argv(cluster: ClusterConfig, python: str) -> list[str]:
        """jsrun with one resource set per node (all its GPUs) or one per GPU."""
        gpus = cluster.gpus_per_node
        if cluster.resource_sets == "gpu":
            if gpus < 1:
                raise ScriptError(
                    "cluster.resource_sets 'gpu' needs cluster.gpus_per_node >= 1",
                    "cluster.resource_sets",
                )
            if ranks_per_node(cluster) != gpus:
                raise ScriptError(
                    f"cluster.resource_sets 'gpu' runs one rank per GPU; cluster.ranks_per_node "
                    f"is {cluster.ranks_per_node}, cluster.gpus_per_node is {gpus}",
                    "cluster.ranks_per_node",
                )
            per_set = ["-n", str(cluster.nodes * gpus), "-r", str(gpus), "-a", "1", "-g", "1"]
            cores = cores_per_rank(cluster)
        else:
            ranks = ranks_per_node(cluster)
            per_set = ["-n", str(cluster.nodes), "-r", "1", "-a", str(ranks), "-g", str(gpus)]
            cores = cluster.cores_per_node
        binding = f"packed:{cores_per_rank(cluster)}"
        # Spectrum MPI's CUDA hooks break programs that use no MPI (OLCF: --smpiargs="off").
        smpi = [f"--smpiargs={cluster.jsrun_smpiargs}"] if cluster.jsrun_smpiargs else []
        return ["jsrun", *per_set, "-c", str(cores), "-b", binding, *smpi, python]

    @staticmethod
    def keepalive_directives(job: KeepAliveJob) -> list[Directive]:
        """One node: on CSM machines (Summit) a batch job reserves whole nodes.

        There ``splinenas run --detach`` on a login or service node costs no
        node-hours at all (README, "Keeping the controller alive").
        """
        controller = job.controller
        pairs: list[Directive] = [
            ("-J ", job.job_name),
            ("-cwd ", _literal_directory(str(job.workdir))),
            ("-o ", LsfScheduler.literal_filename(str(job.log_path))),
            ("-e ", LsfScheduler.literal_filename(str(job.log_path))),
            ("-nnodes ", "1"),
            ("-W ", _walltime(job.walltime_minutes)),
            ("-wa ", "USR2"),
            ("-wt ", str(math.ceil(job.margin_seconds / 60))),
        ]
        return pairs + optional_directives(controller, LsfScheduler.controller_keys)

    @staticmethod
    def literal_filename(path: str) -> str:
        """bsub replaces ``%J`` and ``%I`` in ``-o``/``-e`` and has no escape for them: refuse."""
        return _literal(path, _LOG_PATTERNS, "log path")

    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        done = run_command(
            ["bsub", "-J", job_name, "-cwd", _literal_directory(str(cwd))],
            input_text=script.read_text(encoding="utf-8"),
            timeout=self.timeout,
            cwd=cwd,
        )
        return parse_bsub(done.stdout)

    def _query(self, job_ids: Sequence[str], job_names: Sequence[str]) -> list[JobRecord]:
        return parse_bjobs(self._bjobs(["-a", "-o", BJOBS_FORMAT]))

    def _bjobs(self, options: list[str]) -> str:
        """bjobs output; "No job found" is an empty answer, not a failure."""
        try:
            return run_command(["bjobs", "-noheader", *options], timeout=self.timeout).stdout
        except CommandError as exc:
            if any(text in exc.stderr + exc.stdout for text in _NO_JOBS):
                return exc.stdout
            raise

    def _cancel(self, job_id: str) -> None:
        run_command(["bkill", job_id], timeout=self.timeout)

    def reason(self, job_id: str) -> str:
        try:
            line = self._bjobs(["-o", "stat exit_code exit_reason", job_id]).strip()
        except CommandError as exc:
            return f"lsf: no record of job {job_id} ({exc})"
        if not line:
            return f"lsf: no record of job {job_id}"
        stat, exit_code, exit_reason = (line.split(None, 2) + ["-", "-"])[:3]
        return f"STAT={stat} EXIT_CODE={exit_code} EXIT_REASON={exit_reason}"
