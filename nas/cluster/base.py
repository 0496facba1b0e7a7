"""The scheduler interface and the job states every backend translates to.

A backend is one module with one :class:`Scheduler` subclass (and one job
template named after it); defining the class registers it under its ``name``
(:func:`backend_class`), so job scripts and keep-alive scripts are rendered
through the class's hooks without the renderer knowing any backend.

A backend fills in a few hooks (:meth:`Scheduler._submit`, :meth:`Scheduler._query`,
:meth:`Scheduler._cancel`, :meth:`Scheduler.reason`); the base class owns what
must behave the same everywhere: one batched query per poll, finished states
cached, a failing query logged while the last known states are kept, and a job
missing from the scheduler's answer confirmed gone before it reads as UNKNOWN,
never as completed: only the job's result file says whether it succeeded.

A job missing from the listing is asked about once more through the backend's
:meth:`Scheduler._confirm` (``scontrol show job``, the local process table).
Until the scheduler says it no longer has the job, or the job has been missing
from :data:`MISSING_POLLS` answers in a row where it cannot say, the job reads
MISSING: the controller waits, so a retry never runs next to a job that a
glitching query merely left out.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nas.cluster.proc import DEFAULT_TIMEOUT, CommandError
from nas.cluster.submitter import LockHeld, submitting
from nas.config import (
    MAX_SIGNAL_SECONDS,
    MAX_WALLTIME_MINUTES,
    ClusterConfig,
    ControllerConfig,
)
from nas.errors import UserError
from nas.names import line_problem, name_problem

log = logging.getLogger(__name__)

#: A directive as (flag with its separator, value); a None value is a bare flag.
Directive = tuple[str, "str | None"]


class JobState(enum.Enum):
    """Where a scheduler job stands, the same for every backend."""

    PENDING = "pending"
    """Queued, or being set up (nodes booting, prolog running)."""
    RUNNING = "running"
    """Executing, or finishing (epilog, staging out)."""
    COMPLETED = "completed"
    """Exited with status 0. Whether it produced a valid result is another question."""
    FAILED = "failed"
    """Exited non-zero, or lost to a node failure or a boot failure."""
    OUT_OF_MEMORY = "out_of_memory"
    """Killed by the scheduler for exceeding its memory limit: retrying cannot help."""
    CANCELLED = "cancelled"
    """Cancelled by a person or by the controller."""
    TIMEOUT = "timeout"
    """Stopped by its time limit, a deadline or preemption: resumable, not a failure."""
    HELD = "held"
    """Suspended or held; it will not progress until released."""
    UNKNOWN = "unknown"
    """The scheduler does not (or no longer) know the job, or gave an unknown code."""
    MISSING = "missing"
    """Left out of the scheduler's answer, not yet confirmed gone: wait before judging it."""

    def is_finished(self) -> bool:
        """True for a state the job cannot leave."""
        return self in _FINISHED


_FINISHED = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.OUT_OF_MEMORY,
        JobState.CANCELLED,
        JobState.TIMEOUT,
    }
)


#: Answers in a row a job may be missing from, where the backend cannot confirm
#: that it is gone, before it counts as gone (about three poll intervals).
MISSING_POLLS = 3


class SchedulerError(UserError, RuntimeError):
    """A scheduler command that failed or answered something unreadable."""


class SubmissionInFlight(SchedulerError):
    """An earlier submitter of the job (orphaned by a killed controller) still runs: wait."""


@dataclass(frozen=True)
class JobRecord:
    """One line of a scheduler's job listing."""

    job_id: str
    state: JobState
    name: str


def translate(code: str, table: Mapping[str, JobState], scheduler: str) -> JobState:
    """Map a scheduler's state code to a :class:`JobState`; unknown codes warn."""
    state = table.get(code)
    if state is None:
        log.warning("%s: unknown job state %r, treating it as UNKNOWN", scheduler, code)
        return JobState.UNKNOWN
    return state


class KeepAliveError(UserError, ValueError):
    """A keep-alive job that cannot be set up as asked; the message names the value."""


@dataclass(frozen=True)
class KeepAliveJob:
    """What a keep-alive job runs and asks its scheduler for."""

    backend: str
    state_path: Path
    script_path: Path
    log_path: Path
    workdir: Path
    job_name: str
    python: str
    walltime_minutes: int
    margin_seconds: int
    poll: float
    controller: ControllerConfig

    def check(self) -> None:
        """Raise :class:`KeepAliveError` for a value no script may hold."""
        scheduler = backend_class(self.backend)
        if scheduler is None or scheduler.keepalive is None:
            raise KeepAliveError(f"no keep-alive job for backend {self.backend!r}")
        problem = name_problem(self.job_name)
        if problem:
            raise KeepAliveError(f"job name: {problem}")
        if not 0 < self.walltime_minutes <= MAX_WALLTIME_MINUTES:
            raise KeepAliveError(
                f"the walltime ({self.walltime_minutes} min) must be from 1 to "
                f"{MAX_WALLTIME_MINUTES} min"
            )
        if self.margin_seconds > MAX_SIGNAL_SECONDS:
            raise KeepAliveError(
                f"the stop margin ({self.margin_seconds} s) exceeds {MAX_SIGNAL_SECONDS} s, "
                "the longest warning Slurm sends"
            )
        if not 0 < self.margin_seconds < self.walltime_minutes * 60:
            raise KeepAliveError(
                f"the stop margin ({self.margin_seconds} s) must be positive and shorter than "
                f"the walltime ({self.walltime_minutes} min)"
            )
        if not (math.isfinite(self.poll) and self.poll > 0):
            raise KeepAliveError(f"poll must be a positive number of seconds, got {self.poll}")
        for path in (self.state_path, self.script_path, self.log_path, self.workdir):
            problem = line_problem(path)
            if problem:
                raise KeepAliveError(f"path: {problem}")
            if not path.is_absolute():
                raise KeepAliveError(f"path {str(path)!r}: expected an absolute path")


@dataclass(frozen=True)
class KeepAliveScript:
    """What a backend puts into the one keep-alive frame of :mod:`nas.cluster.keepalive`.

    Every text may use the ``str.format`` fields ``script``, ``log`` (both
    shell-quoted), ``margin`` (seconds of warning before the time limit) and
    ``alarm`` (seconds from the start to that warning).
    """

    how: str
    """How the controller learns the limit is near and goes on afterwards (a comment)."""
    submit: str
    """How a person submits the script by hand (a comment)."""
    job_id: str
    """Shell expression for this job's own id; it must fail outside such a job."""
    resubmit: str
    """The command that continues the controller once it has stopped in good order."""
    setup: str = ""
    """Lines run before the controller starts."""
    cleanup: str = ""
    """Lines run once the controller has stopped."""


#: The keep-alive script's own warning, for schedulers whose warning never reaches it (PBS
#: has none; Flux's goes to the jobs inside the batch instance): a subshell that raises
#: USR2 in the script ``{alarm}`` s after the start, ``{margin}`` s before the limit. One
#: rule for both backends (the ``setup`` and ``cleanup`` of their :class:`KeepAliveScript`).
SELF_ALARM = """\
(trap 'kill "$nap" 2>/dev/null; exit 0' TERM; sleep {alarm} & nap=$!; wait "$nap" && kill -USR2 $$) &
alarm=$!"""
#: Cancels :data:`SELF_ALARM` once the controller has stopped: its ``sleep`` ends with it
#: (killing the subshell alone left the ``sleep`` running for a day).
SELF_ALARM_CLEANUP = 'kill "$alarm" 2>/dev/null'


#: ``[cluster]`` keys that only some backends read (``mem`` is Slurm's, ``alloc_flags``
#: LSF's): one given to a backend that does not read it would change nothing, unsaid.
BACKEND_KEYS = frozenset({"account", "queue", "qos", "constraint", "mem", "alloc_flags",
                          "gpu_bind", "cpu_bind", "resource_sets", "filesystems",
                          "jsrun_smpiargs"})  # fmt: skip

#: ``[controller]`` keys the one keep-alive frame reads whatever the backend: the time limit
#: of each run (:class:`KeepAliveJob`) and the extra directive lines. A backend's own are
#: declared with it (:attr:`Scheduler.controller_keys`, :attr:`Scheduler.controller_other_keys`).
KEEPALIVE_KEYS = frozenset({"walltime_minutes", "extra_directives"})


class Scheduler(abc.ABC):
    """Submit, poll, find and cancel jobs of one backend.

    Job ids are strings. They are unique per backend instance, but Slurm and
    LSF restart their numbering with a fresh cluster, so callers also keep the
    unique job name given at submission and reconcile with
    :meth:`find_by_name`.
    """

    name: ClassVar[str] = "scheduler"
    #: ``#SBATCH``-like prefix of the directives in a job script; None: the
    #: script has no directives and runs on this machine (template ``local``).
    directive_prefix: ClassVar[str | None] = None
    #: Optional directives: flag -> the ``[cluster]`` key that carries its value.
    optional_keys: ClassVar[Mapping[str, str]] = {}
    #: The :data:`BACKEND_KEYS` this backend reads besides its optional directives' keys.
    other_keys: ClassVar[frozenset[str]] = frozenset()
    #: What the keep-alive script of this backend does in the common frame; None: no
    #: keep-alive job.
    keepalive: ClassVar[KeepAliveScript | None] = None
    #: Optional directives of the keep-alive job: flag with its separator -> the
    #: ``[controller]`` key that carries its value.
    controller_keys: ClassVar[Mapping[str, str]] = {}
    #: The ``[controller]`` keys its keep-alive job reads besides :data:`KEEPALIVE_KEYS`
    #: and its optional directives' keys.
    controller_other_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def reads(cls) -> frozenset[str]:
        """The :data:`BACKEND_KEYS` this backend uses; ``init`` names the others a search gives."""
        return frozenset(cls.optional_keys.values()) | cls.other_keys

    @classmethod
    def controller_reads(cls) -> frozenset[str]:
        """The ``[controller]`` keys this backend's keep-alive job uses (none without one);
        ``init`` names the others a search gives."""
        if cls.keepalive is None:
            return frozenset()
        return KEEPALIVE_KEYS | frozenset(cls.controller_keys.values()) | cls.controller_other_keys

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a backend names itself; a subclass of one is no new backend
            _REGISTRY[cls.name] = cls

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._known: dict[str, JobState] = {}
        self._cancelled: set[str] = set()
        #: Answers in a row each unconfirmed missing job was left out of.
        self._misses: dict[str, int] = {}

    # ----------------------------------------------------------------- public API

    def submit(
        self, script_path: str | os.PathLike, *, job_name: str, cwd: str | os.PathLike
    ) -> str:
        """Submit the job script and return the scheduler's job id.

        The submitter runs holding the submission lock of :mod:`nas.cluster.submitter`
        and under its time limit, so a controller restarted while it still runs
        waits for it, and no submitter outlives that limit.

        Raises:
            SubmissionInFlight: an earlier submitter of ``job_name`` still runs.
            SchedulerError: the submission failed or its answer had no job id.
        """
        problem = name_problem(job_name)
        if problem:
            raise ValueError(f"job name: {problem}")
        script = Path(script_path)
        if not script.is_file():
            raise SchedulerError(f"{self.name}: job script {str(script)!r} does not exist")
        try:
            with submitting(job_name, cwd, self.timeout):
                job_id = self._submit(script.resolve(), job_name, Path(cwd).resolve())
        except LockHeld as exc:
            raise SubmissionInFlight(f"{self.name}: {exc}") from None
        except CommandError as exc:
            raise SchedulerError(f"{self.name}: submitting {job_name} failed: {exc}") from None
        self._known[job_id] = JobState.PENDING
        log.info("%s: submitted %s as job %s", self.name, job_name, job_id)
        return job_id

    def status(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        """States of ``job_ids`` from one batched scheduler query.

        Finished states are cached and never queried again. If the query fails
        it is logged and the last known states are returned (UNKNOWN for a job
        never seen). A job the scheduler no longer lists is UNKNOWN once it is
        confirmed gone (:meth:`_missing_state`), MISSING until then.
        """
        ids = list(dict.fromkeys(job_ids))
        wanted = [i for i in ids if not self._known.get(i, JobState.UNKNOWN).is_finished()]
        if wanted:
            try:
                records = {r.job_id: r for r in self._query(wanted, ())}
            except (CommandError, SchedulerError) as exc:
                log.warning(
                    "%s: status query failed, keeping last known states: %s", self.name, exc
                )
            else:
                missing = [i for i in wanted if i not in records]
                confirmed = self._confirmed(missing)
                for job_id in wanted:
                    record = records.get(job_id)
                    state = record.state if record else self._missing_state(job_id, confirmed)
                    if record:
                        self._misses.pop(job_id, None)
                    self._known[job_id] = self._settle(job_id, state)
        return {i: self._known.get(i, JobState.UNKNOWN) for i in ids}

    def missing_state(self, job_id: str, job_name: str) -> JobState:
        """The state of job ``job_id`` that a lookup by ``job_name`` did not find.

        UNKNOWN when the scheduler confirms it has no such job, or the id now
        names another job (numbering restarts with a fresh cluster); its state
        when the scheduler still has it under that name; MISSING while it
        cannot tell (see :data:`MISSING_POLLS`).
        """
        confirmed = self._confirmed([job_id])
        record = confirmed.get(job_id)
        if record is not None and record.name and record.name != job_name:
            confirmed[job_id] = None
        state = self._settle(job_id, self._missing_state(job_id, confirmed))
        self._known[job_id] = state
        return state

    def find_all_by_name(self, job_names: Iterable[str]) -> dict[str, list[JobRecord]]:
        """Every job the scheduler knows under each name, the preferred one first.

        Of several jobs with one name an unfinished one wins (a running one
        over a queued one), else the newest. A second unfinished job under a
        point's name is a duplicate for the controller to cancel.

        Raises:
            SchedulerError: the scheduler could not be asked.
        """
        names = list(dict.fromkeys(job_names))
        try:
            records = self._query((), names)
        except CommandError as exc:
            raise SchedulerError(f"{self.name}: looking up jobs by name failed: {exc}") from None
        found: dict[str, list[JobRecord]] = {}
        for record in records:
            if record.name in names:
                state = self._settle(record.job_id, record.state)
                self._known[record.job_id] = state
                found.setdefault(record.name, []).append(dataclasses.replace(record, state=state))
        for jobs in found.values():
            jobs.sort(key=_preference, reverse=True)
        return found

    def find_by_name(self, job_names: Iterable[str]) -> dict[str, tuple[str, JobState]]:
        """Jobs the scheduler still knows by name: ``{name: (job_id, state)}``.

        Used to re-attach after a crash between submitting and recording the id.
        Of several jobs with one name the first of :meth:`find_all_by_name` wins.

        Raises:
            SchedulerError: the scheduler could not be asked.
        """
        found = self.find_all_by_name(job_names)
        return {name: (jobs[0].job_id, jobs[0].state) for name, jobs in found.items()}

    def cancel(self, job_id: str) -> None:
        """Cancel a job; a job that already finished is left as it is.

        Raises:
            SchedulerError: the scheduler refused.
        """
        try:
            self._cancel(job_id)
        except (CommandError, SchedulerError) as exc:
            if self.status([job_id])[job_id].is_finished():
                return
            raise SchedulerError(f"{self.name}: cancelling job {job_id} failed: {exc}") from None
        self._cancelled.add(job_id)
        log.info("%s: cancelled job %s", self.name, job_id)

    @abc.abstractmethod
    def reason(self, job_id: str) -> str:
        """The scheduler's account of how the job ended (best effort, never raises)."""

    # ----------------------------------------------------------------- hooks

    @abc.abstractmethod
    def _submit(self, script: Path, job_name: str, cwd: Path) -> str:
        """Submit and return the job id; raise CommandError or SchedulerError."""

    @abc.abstractmethod
    def _query(self, job_ids: Sequence[str], job_names: Sequence[str]) -> list[JobRecord]:
        """Records covering ``job_ids`` and jobs named ``job_names`` that the scheduler knows."""

    @abc.abstractmethod
    def _cancel(self, job_id: str) -> None:
        """Ask the scheduler to cancel; raise CommandError on refusal."""

    def _confirm(self, job_ids: Sequence[str]) -> dict[str, JobRecord | None]:
        """A second look at jobs left out of a listing.

        Returns a record for a job the scheduler still has, None for a job it
        says it no longer has; a job it cannot tell about is left out. The
        default can never tell, so a missing job counts as gone only after
        :data:`MISSING_POLLS` answers in a row.
        """
        return {}

    # ----------------------------------------------------------------- script hooks

    @classmethod
    def create(
        cls, *, cluster: ClusterConfig, local_root: str | os.PathLike, timeout: float
    ) -> Scheduler:
        """An instance for the controller.

        ``cluster`` and ``local_root`` matter to the local backend only: it enforces
        ``walltime_minutes`` itself and keeps its job records under ``local_root``.
        """
        return cls(timeout=timeout)

    @staticmethod
    def job_directives(cluster: ClusterConfig, common: Mapping[str, str]) -> list[Directive]:
        """Directives of a training job (``common``: job_name, point_dir, stdout, stderr)."""
        return []

    @staticmethod
    def literal_filename(path: str) -> str:
        """``path`` written so that the output-file patterns of ``job_directives`` keep it as is.

        Raises:
            ScriptError: the scheduler cannot be told to keep it.
        """
        return path

    @staticmethod
    def launcher_argv(cluster: ClusterConfig, python: str) -> list[str]:
        """The command that starts every rank of the trainer, ending with the interpreter."""
        return [python]

    @staticmethod
    def keepalive_directives(job: KeepAliveJob) -> list[Directive]:
        """Directives of the keep-alive controller job."""
        return []

    # ----------------------------------------------------------------- helpers

    def _confirmed(self, job_ids: Sequence[str]) -> dict[str, JobRecord | None]:
        """:meth:`_confirm`, with a failing second look meaning "cannot tell"."""
        if not job_ids:
            return {}
        try:
            return self._confirm(job_ids)
        except (CommandError, SchedulerError) as exc:
            log.warning("%s: cannot confirm jobs %s are gone: %s", self.name, job_ids, exc)
            return {}

    def _missing_state(self, job_id: str, confirmed: Mapping[str, JobRecord | None]) -> JobState:
        """A job left out of the listing: its confirmed state, UNKNOWN once gone, else MISSING."""
        if job_id in confirmed:
            record = confirmed[job_id]
            self._misses.pop(job_id, None)
            return JobState.UNKNOWN if record is None else record.state
        misses = self._misses.get(job_id, 0) + 1
        self._misses[job_id] = misses
        if misses < MISSING_POLLS:
            log.warning("%s: job %s is missing from the scheduler's answer (%d of %d); waiting",
                        self.name, job_id, misses, MISSING_POLLS)  # fmt: skip
            return JobState.MISSING
        log.warning("%s: job %s missing from %d answers in a row: counting it as gone",
                    self.name, job_id, misses)  # fmt: skip
        return JobState.UNKNOWN

    def _settle(self, job_id: str, state: JobState) -> JobState:
        """A job this instance cancelled that ended anyhow but well counts as cancelled.

        LSF reports a killed job as EXIT, the local backend sees a killed process.
        """
        if job_id in self._cancelled and state in (JobState.FAILED, JobState.UNKNOWN):
            return JobState.CANCELLED
        return state


_REGISTRY: dict[str, type[Scheduler]] = {}


def backend_class(name: str) -> type[Scheduler] | None:
    """The registered backend called ``name`` (importing ``nas.cluster`` registers them all)."""
    return _REGISTRY.get(name)


def backend_names() -> tuple[str, ...]:
    """Names of the registered backends, in the order they were defined."""
    return tuple(_REGISTRY)


def _preference(record: JobRecord) -> tuple[bool, bool, tuple[int, str]]:
    """Sort key for jobs sharing a name: unfinished, then running, then the newest id."""
    return (
        not record.state.is_finished(),
        record.state is JobState.RUNNING,
        _id_key(record.job_id),
    )


def _id_key(job_id: str) -> tuple[int, str]:
    head = job_id.split("_", 1)[0].split(".", 1)[0]
    return (int(head), job_id) if head.isdigit() else (-1, job_id)
