"""Slurm: sbatch to submit, squeue (and sacct where accounting exists) to poll.

``squeue -t all`` lists finished jobs only until ``MinJobAge`` purges them;
``sacct`` remembers them for good but only on clusters with accounting
(slurmdbd). Without it sacct says "accounting storage is disabled": this
backend notices once and stops asking, so a purged job is UNKNOWN and the
controller decides from the result file.
"""

from __future__ import annotations

import getpass
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from nas.cluster.base import JobRecord, JobState, Scheduler, SchedulerError, translate
from nas.cluster.proc import DEFAULT_TIMEOUT, CommandError, run_command

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
    "OUT_OF_MEMORY": JobState.FAILED,
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
_JOB_ID = re.compile(r"^(\d+(?:_\d+)?)(?:;\S+)?$")
_SCONTROL_FIELDS = ("JobState", "Reason", "ExitCode", "RunTime", "TimeLimit")


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


class SlurmScheduler(Scheduler):
    """Jobs on a Slurm cluster, polled with one squeue call per cycle."""

    name = "slurm"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, user: str | None = None) -> None:
        super().__init__(timeout=timeout)
        self.user = user or getpass.getuser()
        self._accounting: bool | None = None

    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        done = run_command(
            ["sbatch", "--parsable", f"--job-name={job_name}", f"--chdir={cwd}", str(script)],
            timeout=self.timeout,
            cwd=cwd,
            pass_fds=self._submitter_fds,
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

    def _cancel(self, job_id: str) -> None:
        run_command(["scancel", job_id], timeout=self.timeout)

    def reason(self, job_id: str) -> str:
        try:
            done = run_command(["scontrol", "show", "job", "-o", job_id], timeout=self.timeout)
        except CommandError as exc:
            return self._sacct_reason(job_id) or f"slurm: no record of job {job_id} ({exc})"
        pairs = parse_scontrol(done.stdout)
        return " ".join(f"{key}={pairs[key]}" for key in _SCONTROL_FIELDS if key in pairs)

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
