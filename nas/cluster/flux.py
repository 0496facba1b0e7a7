"""Flux (LLNL El Capitan, Tuolumne): ``flux batch`` to submit, ``flux jobs`` to poll.

``flux batch`` reads ``#flux:`` directives (RFC 36) and prints the job id in
F58 (``ƒM7Zq9AKHno``); this backend keeps ids as decimal integers, the form
``flux jobs --json`` reports in ``id`` and every Flux command accepts. One
``flux jobs -a -c 0 --json`` per poll lists all of the user's jobs, inactive
ones included until the instance purges them (``-c 0``: no 1,000-job cap).
A job passes DEPEND, PRIORITY, SCHED, RUN, CLEANUP and ends INACTIVE with a
result: COMPLETED, FAILED, CANCELED (``flux cancel``) or TIMEOUT.

With ``signal_seconds`` the job asks for ``--signal=USR2@<N>s``. Flux 0.51 and
later deliver it to the batch instance's broker, which forwards USR1/USR2 to the
jobs running inside that instance (``job-manager.killall``), not to the batch
script (flux-core ``src/broker/broker.c: signal_cb``): the training ranks of the
running ``flux run`` step get it directly and checkpoint; the batch script gets
it only where the broker cannot forward it (older Flux). The keep-alive job,
whose instance runs no jobs, therefore raises its own warning (:data:`KEEPALIVE`).
Flux is tested against the fake ``flux`` in ``tests/fakes``.
"""

from __future__ import annotations

import json
import re
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

#: ``state`` of ``flux jobs --json`` -> JobState; INACTIVE is refined by the result.
FLUX_STATES: dict[str, JobState] = {
    "NEW": JobState.PENDING,
    "DEPEND": JobState.PENDING,
    "PRIORITY": JobState.PENDING,
    "SCHED": JobState.PENDING,
    "RUN": JobState.RUNNING,
    "CLEANUP": JobState.RUNNING,
    "INACTIVE": JobState.UNKNOWN,
}
#: ``result`` of an INACTIVE job -> JobState.
FLUX_RESULTS: dict[str, JobState] = {
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
}

#: RFC 19 F58: base58 with this alphabet after the prefix "ƒ" (or "f" in ASCII).
_F58_DIGITS = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_F58 = re.compile(rf"^[ƒf]([{_F58_DIGITS}]{{1,12}})$")


def job_id(text: str) -> str:
    """A Flux job id (F58 or decimal) as the decimal text this backend keeps."""
    text = text.strip()
    if text.isdigit():
        return str(int(text))
    match = _F58.fullmatch(text)
    if not match:
        raise SchedulerError(f"flux: not a job id: {text!r}")
    number = 0
    for digit in match.group(1):
        number = number * 58 + _F58_DIGITS.index(digit)
    return str(number)


def parse_batch(stdout: str) -> str:
    """The job id ``flux batch`` printed (its last line)."""
    lines = stdout.strip().splitlines()
    try:
        return job_id(lines[-1] if lines else "")
    except SchedulerError:
        raise SchedulerError(f"flux: flux batch answered no job id: {stdout.strip()!r}") from None


def job_state(job: Mapping[str, Any]) -> JobState:
    """State of one job of ``flux jobs --json``; an INACTIVE one by its result."""
    state = str(job.get("state", ""))
    if state == "INACTIVE":
        return translate(str(job.get("result", "")), FLUX_RESULTS, "flux")
    return translate(state, FLUX_STATES, "flux")


def parse_jobs(stdout: str) -> list[JobRecord]:
    """Records from ``flux jobs --json`` (``{"jobs": [...]}`` or, for one id, the job itself)."""
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"flux: flux jobs answered no JSON ({exc})") from None
    jobs = document.get("jobs", [document]) if isinstance(document, dict) else None
    if not isinstance(jobs, list):
        raise SchedulerError("flux: flux jobs' JSON has no 'jobs' list")
    return [
        JobRecord(str(job["id"]), job_state(job), str(job.get("name", "")))
        for job in jobs
        if isinstance(job, dict) and isinstance(job.get("id"), int)
    ]


def _gpus_per_rank(cluster: ClusterConfig) -> int:
    """GPUs of each slot: the node's GPUs shared evenly by its ranks."""
    ranks = ranks_per_node(cluster)
    if cluster.gpus_per_node % ranks:
        raise ScriptError(
            f"flux gives every rank the same number of GPUs: cluster.gpus_per_node "
            f"({cluster.gpus_per_node}) is not a multiple of the ranks per node ({ranks})",
            "cluster.gpus_per_node",
        )
    return cluster.gpus_per_node // ranks


def _log_path(path: str, what: str) -> str:
    """Flux expands ``{{...}}`` in ``--output``/``--error`` as a mustache template."""
    if "{{" in path or "}}" in path:
        raise ScriptError(f"{what}: Flux would read {path!r} as a template; avoid '{{{{'")
    return path


#: The keep-alive job: before its time limit it submits its own script again. Its warning
#: is its own alarm (:data:`nas.cluster.base.SELF_ALARM`, PBS's rule): since flux-core 0.51
#: the rank-0 broker of a ``flux batch`` instance forwards USR1/USR2 to the jobs running
#: inside that instance and signals the batch script only when it cannot even ask for that
#: (flux-core ``src/broker/broker.c: signal_cb``, commit aecfd32c1, "broker: forward
#: non-deadly signals to all jobs"). This instance runs no jobs (the controller is a plain
#: child that talks to the enclosing instance), so ``--signal`` reaches no one there; it is
#: kept as a second source for older Flux, and the frame acts on the first USR2 only.
KEEPALIVE = KeepAliveScript(
    how="Flux hands its --signal USR2 to the jobs inside this batch instance, and there are "
    "none, so this shell raises USR2 itself {margin} s before the time limit; the controller "
    "stops after its cycle and this script is submitted again.",
    submit="flux batch <this file>",
    job_id='$(flux job id --to=dec "${{FLUX_ENCLOSING_ID:?not a Flux batch job}}") || exit 1',
    # The controller submits to, polls and cancels in the enclosing instance, not in this
    # job's own one-node instance.
    setup=f"""\
FLUX_URI=$(flux getattr parent-uri) || exit 1
export FLUX_URI
{SELF_ALARM}""",
    cleanup=SELF_ALARM_CLEANUP,
    resubmit="flux batch {script}",
)


class FluxScheduler(Scheduler):
    """Jobs in a Flux instance, ranks started by ``flux run``."""

    name = "flux"
    directive_prefix = "#flux:"
    optional_keys = {"--queue": "queue", "--bank": "account", "--requires": "constraint"}
    keepalive = KEEPALIVE
    controller_keys = {"--queue=": "queue", "--bank=": "account"}
    controller_other_keys = frozenset({"cores"})

    @staticmethod
    def job_directives(cluster: ClusterConfig, common: Mapping[str, str]) -> list[Directive]:
        """``-N`` nodes, ``-n`` one slot per rank of ``-c`` cores and ``-g`` GPUs, ``-t`` minutes.

        ``--exclusive`` (``-x``): with ``-N`` and ``-n`` Flux gives whole nodes
        only when the slots fill them, so a job asking for fewer cores than a
        node has would share its nodes (and their NICs) with other jobs.
        """
        gpus = _gpus_per_rank(cluster)
        pairs: list[Directive] = [
            ("--job-name=", common["job_name"]),
            ("-N ", str(cluster.nodes)),
            ("-n ", str(cluster.nodes * ranks_per_node(cluster))),
            ("-c ", str(cores_per_rank(cluster))),
            *([("-g ", str(gpus))] if gpus else []),
            ("-t ", f"{cluster.walltime_minutes}m"),
            ("--exclusive", None),
            ("--output=", _log_path(common["stdout"], "stdout_path")),
        ]
        if common["stderr"] != common["stdout"]:  # else Flux sends stderr to the same file
            pairs.append(("--error=", _log_path(common["stderr"], "stderr_path")))
        if cluster.signal_seconds:
            pairs.append(("--signal=", f"USR2@{signal_seconds(cluster)}s"))
        pairs += [(f"{flag}=", getattr(cluster, key)) for flag, key in
                  FluxScheduler.optional_keys.items() if getattr(cluster, key) is not None]  # fmt: skip
        return pairs

    @staticmethod
    def literal_filename(path: str) -> str:
        return _log_path(path, "the log path")

    @staticmethod
    def launcher_argv(cluster: ClusterConfig, python: str) -> list[str]:
        """``flux run`` over the whole allocation; with GPUs each rank sees only its own."""
        gpus = _gpus_per_rank(cluster)
        ranks = str(cluster.nodes * ranks_per_node(cluster))
        argv = ["flux", "run", "-N", str(cluster.nodes), "-n", ranks,
                "-c", str(cores_per_rank(cluster))]  # fmt: skip
        if gpus:
            argv += ["-g", str(gpus), "-o", "gpu-affinity=per-task"]
        return [*argv, python]

    @staticmethod
    def keepalive_directives(job: KeepAliveJob) -> list[Directive]:
        """One slot of ``[controller] cores`` cores, no GPU; the log is appended to."""
        controller = job.controller
        pairs: list[Directive] = [
            ("--job-name=", job.job_name),
            ("-N ", "1"),
            ("-n ", "1"),
            ("-c ", str(controller.cores)),
            ("-t ", f"{job.walltime_minutes}m"),
            ("--output=", _log_path(str(job.log_path), "log_path")),
            ("-o ", "output.mode=append"),
            # A second source only: Flux 0.51+ forwards it past this script (KEEPALIVE).
            ("--signal=", f"USR2@{job.margin_seconds}s"),
        ]
        return pairs + optional_directives(controller, FluxScheduler.controller_keys)

    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        done = run_command(["flux", "batch", f"--job-name={job_name}", str(script)],
                           timeout=self.timeout, cwd=cwd)  # fmt: skip
        return parse_batch(done.stdout)

    def _query(self, job_ids: Sequence[str], job_names: Sequence[str]) -> list[JobRecord]:
        done = run_command(["flux", "jobs", "-a", "-c", "0", "--json"], timeout=self.timeout)
        return parse_jobs(done.stdout)

    def _cancel(self, job_id: str) -> None:
        run_command(["flux", "cancel", job_id], timeout=self.timeout)

    def reason(self, job_id: str) -> str:
        try:
            done = run_command(["flux", "jobs", "--json", job_id], timeout=self.timeout)
            job = json.loads(done.stdout)
        except (CommandError, ValueError) as exc:
            return f"flux: no record of job {job_id} ({exc})"
        if not isinstance(job, dict):
            return f"flux: no record of job {job_id}"
        fields = [f"{key}={job[key]}" for key in ("state", "result", "returncode") if key in job]
        exception = job.get("exception", {})
        if isinstance(exception, dict) and exception.get("occurred"):
            fields.append(f"exception={exception.get('type')}: {exception.get('note')}")
        return " ".join(fields)
