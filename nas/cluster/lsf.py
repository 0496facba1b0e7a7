"""IBM Spectrum LSF: bsub to submit, bjobs to poll, bkill to cancel.

``bsub`` reads ``#BSUB`` directives only from a script on stdin, so the script
goes there. ``bjobs -a`` lists the user's jobs, finished ones included until
LSF cleans them (``CLEAN_PERIOD``, an hour by default). LSF reports every
job that did not exit 0 as EXIT; its ``exit_reason`` (``TERM_OWNER``,
``TERM_RUNLIMIT``, ...) tells a cancelled or timed-out job from a failed one. LSF is closed software:
the tests run this backend against the fake commands in ``tests/fakes``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from nas.cluster.base import JobRecord, JobState, Scheduler, SchedulerError, translate
from nas.cluster.proc import CommandError, run_command

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

#: EXIT with one of these termination reasons is not a failure of the job itself.
LSF_EXIT_REASONS: dict[str, JobState] = {
    "TERM_OWNER": JobState.CANCELLED,
    "TERM_ADMIN": JobState.CANCELLED,
    "TERM_FORCE_OWNER": JobState.CANCELLED,
    "TERM_FORCE_ADMIN": JobState.CANCELLED,
    "TERM_RUNLIMIT": JobState.TIMEOUT,
    "TERM_PREEMPT": JobState.TIMEOUT,
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


class LsfScheduler(Scheduler):
    """Jobs on an LSF cluster (e.g. Summit-like machines with jsrun)."""

    name = "lsf"

    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        done = run_command(
            ["bsub", "-J", job_name, "-cwd", str(cwd)],
            input_text=script.read_text(encoding="utf-8"),
            timeout=self.timeout,
            cwd=cwd,
            pass_fds=self._submitter_fds,
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
