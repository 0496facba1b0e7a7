"""The controller: poll -> ingest -> retry -> refit and propose -> render -> submit.

One :meth:`Controller.cycle` does every step once and commits; the loop in
:func:`nas.control.loop.run_controller` repeats it until the search converges or its budget is
spent. Only the controller writes the state, under the state's lock; jobs
only write files in their point folders (:mod:`nas.control.ingest` reads them).
Which points a cycle proposes and submits is decided in :mod:`nas.control.plan`,
which the dry run shares.

Never lose, never duplicate: before a job is submitted the intent is
committed (the point becomes ``submitting`` with a job name unique to this
attempt and segment); after the scheduler answers, the job id is committed
(``submitted``). A controller that starts, or that finds a point still
``submitting``, first asks the scheduler for those job names: a job it knows
is re-attached; a name it does not know, with no result file, was never
submitted and is submitted now under the same name. A job that the scheduler
stops listing is judged (and perhaps retried) only once the scheduler
confirms it is gone: see :meth:`nas.cluster.Scheduler.status`. A point
therefore never has two live jobs, and a result is recorded once, when the
committed state first sees it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from nas.cluster import JobRecord, JobState, Scheduler, SchedulerError
from nas.cluster.base import SubmissionInFlight
from nas.cluster.render import deadline_seconds
from nas.cluster.submitter import Submission, in_flight
from nas.config import Experiment
from nas.control import inbox, policy
from nas.control.ingest import (
    LATE_RESULT,
    LATE_RESULT_STAMP,
    RESULT_METRICS,
    RESULT_STAMP,
    JobOutcome,
    Verdict,
    archive_attempt,
    archive_outcome_files,
    check_result,
    drop_checkpoint,
    judge,
    late_result_text,
    result_stamp,
)
from nas.control.operations import ended_job_of
from nas.control.plan import Stop, next_batch, submission_plan
from nas.control.prepare import PREPARE_ERRORS, JobSettings, feasibility, training_seed
from nas.numbers import plural
from nas.pointdir import heartbeat, layout
from nas.pointdir.curve import MAX_CURVE_BYTES, read_curve_tail
from nas.pointdir.outcome import PROGRESS_STEP
from nas.pointdir.result import Result
from nas.record.state import (
    ACTIVE,
    COUNTED_AS,
    IDLE,
    INGEST,
    INGEST_BY_HAND,
    Event,
    Point,
    PointStatus,
)
from nas.record.store import StateStore

log = logging.getLogger(__name__)

#: Key of a point's ``extra`` holding the evidence of its submission while it is ``submitting``.
SUBMISSION = "submission"
#: Key of a point's ``extra``: ``[reruns, attempt]`` of the last attempt whose segment stopped
#: without progress; a segment that progresses removes it (:meth:`Controller._stalled`).
STALLED = "stalled_attempt"

_S = PointStatus
#: How a job may end and still leave a valid result, which is kept (a training that wrote
#: it and then crashed in its teardown cost its GPU-hours all the same); the ingest event
#: says how the job ended. A job the scheduler no longer knows (UNKNOWN) is not named: on
#: a Slurm without accounting every finished job is one.
_ENDED_BADLY = frozenset(
    {JobState.FAILED, JobState.OUT_OF_MEMORY, JobState.CANCELLED, JobState.TIMEOUT}
)


@dataclass(frozen=True)
class CycleSummary:
    """What one cycle left behind, for the one-line report and ``--json``."""

    cycle: int
    counts: dict[str, int]
    best_id: int | None
    best_value: float | None
    gap: float | None
    gpu_hours: float
    submitted: tuple[int, ...]
    stop: Stop | None
    #: The state's events of this cycle: every change to a point or to the plan.
    changes: tuple[Event, ...] = ()

    def line(self) -> str:
        counts = ", ".join(
            f"{n} {status}" for status, n in self.counts.items() if n or status in _SHOWN
        )
        best = "-" if self.best_id is None else f"{self.best_value:.4g} (point {self.best_id})"
        gap = "-" if self.gap is None else f"{self.gap:.3g}"
        line = f"cycle {self.cycle}: {counts}; best {best}; gap {gap}; {self.gpu_hours:.1f} GPU-h"
        return line + (f"; stop: {self.stop.reason}" if self.stop else "")

    def to_dict(self) -> dict[str, object]:
        doc = dataclasses.asdict(self)
        doc["stop"] = None if self.stop is None else dataclasses.asdict(self.stop)
        doc["changes"] = len(self.changes)
        return doc


_SHOWN = ("done", "running", "pending", "failed")


class Controller:
    """One search's cycle over its state, scheduler and run folder."""

    def __init__(
        self, store: StateStore, settings: JobSettings, scheduler: Scheduler, run: Path
    ) -> None:
        self.store = store
        self.state = store.state
        self.settings = settings
        self.experiment: Experiment = settings.experiment
        self.scheduler = scheduler
        self.run = run
        self.feasible = feasibility(self.experiment, settings.workdir)
        self.measured = policy.measured(self.experiment)
        self.study = policy.Study(self.state, self.experiment, self.feasible)
        self._reattached = False
        self._submitted: list[int] = []
        #: Job names of submissions in flight that were reported as waited for.
        self._waited: set[str] = set()
        self._first_event = len(self.state.events)

    # ------------------------------------------------------------------ the cycle
    def cycle(self) -> Stop | None:
        """Do every step once and commit; return why to stop, or None to go on."""
        self._submitted = []
        self._first_event = len(self.state.events)
        self._apply_inbox()
        if self._poll():
            self._ingest_by_hand()
            self._note_late_results()
        self.store.commit()
        stop = self._next_batch()
        self._submit_ready()
        return stop

    def _apply_inbox(self) -> None:
        """Requests of operator commands (rerun, cancel, expand), each applied and committed."""
        inbox.process(self.run, self.state, self.store.commit, self.scheduler)

    def _poll(self) -> bool:
        """Re-attach jobs by name where needed, poll the rest, judge the jobs that ended.

        Every active point's name is looked up each cycle, so a second job
        under one name (an orphaned submitter's) is cancelled at once. A job
        the scheduler no longer lists is judged only once the scheduler
        confirms it gone (UNKNOWN); while it is MISSING the point waits. A
        ``submitting`` point whose earlier submitter still runs is left alone
        until that submitter ends: only then does the scheduler's answer say
        whether it submitted.

        Returns:
            False when the scheduler could not be asked for job names: nothing
            is judged this cycle, so nothing is submitted twice.
        """
        active = [p for p in self.state.with_status(*ACTIVE) if not self._in_flight(p)]
        try:
            found = self.scheduler.find_all_by_name(p.job_name for p in active) if active else {}
        except SchedulerError as exc:
            log.warning("cannot re-attach jobs, trying again next cycle: %s", exc)
            return False
        unlisted: dict[int, JobState] = {}
        for point in active:
            kept = self._cancel_duplicates(point, found.get(point.job_name, []))
            if point.status is not _S.SUBMITTING and self._reattached:
                continue
            if kept is not None:
                self._attach(point, kept)
            elif point.status is _S.SUBMITTING:
                self._resume_submission(point)
            else:  # asked by id and name: the id may belong to another job by now
                unlisted[point.id] = self.scheduler.missing_state(point.job_id, point.job_name)
        self._reattached = True
        watched = self.state.with_status(_S.SUBMITTED, _S.RUNNING)
        states = self.scheduler.status(p.job_id for p in watched if p.id not in unlisted)
        for point in watched:
            job_state = unlisted.get(point.id) or states[point.job_id]
            if job_state is JobState.RUNNING and point.status is _S.SUBMITTED:
                self.state.set_status(point.id, _S.RUNNING, f"job {point.job_id}")
            elif job_state.is_finished() or job_state is JobState.UNKNOWN:
                self._ended(point, job_state)
        return True

    def _ended(self, point: Point, job_state: JobState) -> None:
        """Judge a job that ended or that the scheduler no longer knows, unless its point
        folder is refused or its training still beats."""
        if not self._usable(point):
            return
        if job_state is JobState.UNKNOWN and self._still_training(point):
            return
        self._job_ended(point, job_state)

    def _usable(self, point: Point) -> bool:
        """Whether the point's folder may be read; else the point fails, without a retry.

        Something other than a real folder in its place (a symlink a job or
        another user left there) would have the controller read, rename and
        delete in another folder (:func:`nas.pointdir.layout.require_point_folder`);
        every attempt would meet it again, until a person removes it.
        """
        problem = layout.point_folder_problem(self._folder(point))
        if problem is not None:
            self.state.set_status(point.id, _S.FAILED, problem)
        return problem is None

    def _still_training(self, point: Point) -> bool:
        """A job the scheduler no longer knows whose training still beats: judge it later.

        Judging it now would retry the point beside a run that goes on
        (:mod:`nas.pointdir.heartbeat`); a result already written ends the wait.
        """
        folder = self._folder(point)
        if (folder / layout.RESULT_FILE).exists() or not heartbeat.fresh(folder):
            return False
        log.warning("point %d: the scheduler no longer knows job %s, but its training beat "
                    "%.0f s ago; judging it once the heartbeat is %.0f s old", point.id,
                    point.job_id, heartbeat.age(folder) or 0.0, heartbeat.STALE)  # fmt: skip
        return True

    def _in_flight(self, point: Point) -> bool:
        """A ``submitting`` point whose earlier submitter (a killed controller's) may still run.

        The evidence committed before that submitter started says where and
        when (:mod:`nas.cluster.submitter`); without it the point is not in flight.
        """
        if point.status is not _S.SUBMITTING:
            return False
        why = self._submission_running(point)
        if why is None:
            return False
        if point.job_name not in self._waited:  # once per submission, not every cycle
            self._waited.add(point.job_name)
            log.warning("point %d: an earlier submission of %s may still run (%s); waiting for it",
                        point.id, point.job_name, why)  # fmt: skip
        return True

    def _submission_running(self, point: Point) -> str | None:
        evidence = Submission.from_dict(point.extra.get(SUBMISSION))
        return None if evidence is None else in_flight(evidence)

    def _cancel_duplicates(self, point: Point, jobs: list[JobRecord]) -> str | None:
        """Keep one unfinished job under the point's name, cancel the others; the kept id.

        The job the point already records is kept; otherwise the scheduler's
        preferred one (running over queued, then the newest).
        """
        live = [j for j in jobs if not j.state.is_finished()]
        if not live:
            return jobs[0].job_id if jobs else None
        kept = next((j for j in live if j.job_id == point.job_id), live[0])
        for job in live:
            if job is kept:
                continue
            try:
                self.scheduler.cancel(job.job_id)
            except SchedulerError as exc:
                log.warning(
                    "point %d: cannot cancel duplicate job %s: %s", point.id, job.job_id, exc
                )
                continue
            self.state.log("duplicate", f"cancelled job {job.job_id}, a second job named "
                           f"{point.job_name}; kept job {kept.job_id}", point.id)  # fmt: skip
        return kept.job_id

    def _attach(self, point: Point, job_id: str) -> None:
        if point.job_id != job_id:
            self.state.update_point(point.id, job_id=job_id)
        if point.status is _S.SUBMITTING:
            self._submitted_as(point, job_id, f"job {job_id} re-attached by name")

    def _submitted_as(self, point: Point, job_id: str, reason: str) -> None:
        """``submitting`` -> ``submitted`` with its job id; the submission's evidence is done."""
        extra = {k: v for k, v in self.state.point(point.id).extra.items() if k != SUBMISSION}
        self.state.update_point(point.id, job_id=job_id, extra=extra)
        self.state.set_status(point.id, _S.SUBMITTED, reason)

    def _resume_submission(self, point: Point) -> None:
        """A ``submitting`` point the scheduler does not know: its result, or submit it now."""
        if not self._usable(point):
            return
        folder = self._folder(point)
        check = check_result(folder, point.id, point.params, self.measured, point.job_name)
        if check is not None and check.result is not None:
            self._record(point, check.result, f"job {point.job_name} (no longer in the scheduler)")
            return
        if check is not None:
            self._rejected(point, check.rejected, check.reason)
        self._launch(point)

    def _job_ended(self, point: Point, job_state: JobState) -> None:
        """Decide from the point folder what an ended job achieved."""
        outcome, check = judge(
            self._folder(point),
            point.id,
            point.params,
            self.measured,
            cancelled=job_state is JobState.CANCELLED,
            log=layout.log_path(self.run, point.id, point.job_name),
            out_of_memory=job_state is JobState.OUT_OF_MEMORY,
            exited_zero=job_state is JobState.COMPLETED,
            job=point.job_name,
        )
        if check is not None and check.rejected is not None:
            self._rejected(point, check.rejected, check.reason)
        verdict, job = outcome.verdict, f"job {point.job_id}"
        if verdict is Verdict.DONE:
            assert outcome.result is not None  # a DONE outcome carries its result
            if job_state in _ENDED_BADLY:  # e.g. a crash tearing down NCCL after the result
                reason = self.scheduler.reason(point.job_id)
                job += f", which ended {job_state.value} ({reason}) after writing it"
            self._record(point, outcome.result, job)
        elif verdict is Verdict.CANCELLED:
            self.state.set_status(point.id, _S.CANCELLED, f"{job}: {outcome.detail}")
        elif verdict is Verdict.INFEASIBLE:
            if job_state is JobState.OUT_OF_MEMORY:
                job += f" ({self.scheduler.reason(point.job_id)})"
            self.state.set_status(point.id, _S.INFEASIBLE, f"{job}: {outcome.detail}")
        elif verdict in (
            Verdict.ENVIRONMENT,
            Verdict.CONTRACT,
            Verdict.USAGE,
        ):  # no retry: the same every attempt
            self.state.set_status(point.id, _S.FAILED, f"{job}: {outcome.detail}")
        elif verdict is Verdict.INCOMPLETE:
            self._incomplete(point, outcome.position, f"{job}: {outcome.detail}")
        elif verdict is Verdict.DIVERGED:
            self._diverged(point, outcome, job)
        else:
            self._failed(point, f"{job} ({self.scheduler.reason(point.job_id)}): {outcome.detail}")

    def _incomplete(self, point: Point, position: tuple[int, int] | None, reason: str) -> None:
        """Next segment, unless this one made no progress (:meth:`_stalled`)."""
        before = tuple(point.extra.get("position", (0, 0)))
        if position is None or position <= before:
            self._stalled(point, f"{reason}, but the segment made no progress past {before}")
            return
        extra = {key: value for key, value in point.extra.items() if key != STALLED}
        self.state.update_point(point.id, extra={**extra, "position": list(position)})
        self.state.set_status(point.id, _S.INCOMPLETE, reason)

    def _stalled(self, point: Point, reason: str) -> None:
        """A segment that stopped without recorded progress: one retry, not ``max_attempts``.

        The usual cause is a walltime shorter than what the trainer needs to
        record progress (a whole epoch, when it reports no step inside one):
        every attempt then stops at the same place, each after a full walltime,
        for every candidate of the search. One retry is kept, since a slow node
        or file system can stall a single segment; a second attempt in a row
        that stalls fails the point. A segment that progresses clears the
        count, and a rerun starts it again (the pair holds the rerun).
        """
        reason += f": {self._stall_advice()}"
        attempt = [int(point.extra.get("reruns", 0)), point.attempts]
        if point.extra.get(STALLED) == [attempt[0], attempt[1] - 1]:
            gave_up = (
                f"gave up after {plural(point.attempts, 'attempt')}, two in a row without progress"
            )
            self.state.set_status(point.id, _S.FAILED, f"{gave_up}: {reason}")
            return
        self.state.update_point(point.id, extra={**point.extra, STALLED: attempt})
        self._failed(point, reason)

    def _stall_advice(self) -> str:
        """The likely cause of a segment without progress and what to do, with the numbers."""
        cluster = self.settings.cluster
        return (
            f"one segment ([cluster] walltime_minutes {cluster.walltime_minutes} x 60 minus "
            f"signal_seconds {cluster.signal_seconds} = {deadline_seconds(cluster)} s) did not "
            "complete recorded progress; raise walltime_minutes, or report the step reached "
            f"inside the epoch ({layout.PROGRESS_FILE} {PROGRESS_STEP}; "
            "nas.trial.exit_incomplete(epoch, step=...))"
        )

    def _failed(self, point: Point, reason: str) -> None:
        """Retry up to ``max_attempts``, then leave the point failed for a person."""
        limit = self.experiment.cluster.max_attempts
        if point.attempts < limit:
            self.state.set_status(
                point.id, _S.FAILED, f"attempt {point.attempts} of {limit}: {reason}"
            )
            self.state.set_status(point.id, _S.PENDING, f"retry {point.attempts + 1} of {limit}")
        else:
            self.state.set_status(
                point.id, _S.FAILED, f"gave up after {plural(limit, 'attempt')}: {reason}"
            )

    def _diverged(self, point: Point, outcome: JobOutcome, job: str) -> None:
        """Apply ``[train] on_divergence``: one new attempt with a new seed, or fail.

        Only the seed changes (recorded in the event log and in ``extra``); the
        checkpoint and curve of the diverged attempt are set aside.
        """
        self._ingest_curve(point)
        divergence = outcome.divergence
        saved = dict(point.extra.get("guard_saved", {"device_hours": 0.0, "gpu_hours": 0.0}))
        if divergence is not None:
            saved["device_hours"] += divergence.saved_device_hours
            saved["gpu_hours"] += divergence.saved_gpu_hours
        reseeds = int(point.extra.get("reseeds", 0))
        extra = {**point.extra, "guard_saved": saved, "diverged": reseeds + 1}
        self.state.update_point(point.id, extra=extra)
        reason = f"{job}: {outcome.detail}"
        self.state.log("diverge", reason, point.id)
        if self.experiment.train.on_divergence == "fail" or reseeds >= 1:
            why = "on_divergence = fail" if reseeds == 0 else "it diverged again with a new seed"
            self.state.set_status(point.id, _S.FAILED, f"{reason} ({why})")
            return
        seed = training_seed(self.experiment, {**extra, "reseeds": 1})
        archive_attempt(
            self._folder(point), f"diverged-seed{training_seed(self.experiment, extra)}"
        )
        self.state.update_point(point.id, extra={**extra, "reseeds": 1})
        self.state.set_status(point.id, _S.FAILED, reason)
        self.state.set_status(
            point.id, _S.PENDING, f"retry with a new seed {seed} after divergence"
        )

    def _ingest_curve(self, point: Point) -> None:
        """Copy the point folder's learning curve into the state (bounded read).

        A curve file longer than the read keeps every entry, the state only
        the last ones: the event says which, so nobody takes the stored curve
        for the whole training. Lines or fields the reader left out (a
        fractional epoch, a figure that is no number) are said the same way.
        """
        tail = read_curve_tail(self._folder(point))
        curve, unread = tail.entries, tail.unread_bytes
        if tail.left_out:
            self.state.log(
                "curve",
                f"{layout.CURVE_FILE}: left out of the stored curve: {'; '.join(tail.left_out)} "
                "(the file in the point's folder has them)",
                point.id,
            )
        if not curve:
            return
        self.state.set_curve(point.id, curve)
        if unread:
            self.state.log(
                "curve",
                f"{layout.CURVE_FILE} is longer than the {MAX_CURVE_BYTES / 2**20:g} MiB the "
                f"state keeps of it: epochs {curve[0]['epoch']}-{curve[-1]['epoch']} kept, "
                f"the first {unread:,} bytes left out (the file in the point's folder has them)",
                point.id,
            )

    def _record(self, point: Point, result: Result, source: str, *, by_hand: bool = False) -> None:
        value = result.metrics[self.experiment.experiment.metric]
        self._ingest_curve(point)
        extra = {
            **self.state.point(point.id).extra,
            "pace": result.pace(),
            RESULT_METRICS: dict(result.metrics),  # measured costs and trade-offs read them
            RESULT_STAMP: result_stamp(self._folder(point)),  # a later file is said, once
        }
        job_gpus = self.settings.cluster.gpus_per_node > 0  # what the job it ran in asked for
        gpu_hours, uncounted = result.counted_gpu_hours(job_gpus=job_gpus)
        self.state.update_point(point.id, gpu_hours=gpu_hours, extra=extra)
        self.state.record(point.id, value)
        note = f" for a {point.status.value} point" if by_hand else ""
        kind = INGEST_BY_HAND if by_hand else INGEST
        notes = self._ingest_notes(point, result, uncounted)
        self.state.log(kind, f"result of {source}{note}: {value:.6g}{notes}", point.id)
        if not self.experiment.train.keep_checkpoint:  # [train] keep_checkpoint keeps it
            freed = drop_checkpoint(self._folder(point))
            if freed:
                log.info("point %d: deleted its checkpoint (%.1f MB)", point.id, freed / 1e6)

    def _ingest_notes(self, point: Point, result: Result, uncounted: str) -> str:
        """What an ingest event says besides the value: said, not silent.

        The entries of the file that are not kept, a point folder another user
        owns (who could have changed the result: :func:`nas.pointdir.layout.foreign_owner`),
        and, where ``max_gpu_hours`` is set, why the result's device-hours are not
        counted against it (``uncounted``, from :meth:`Result.counted_gpu_hours`):
        a budget that never binds is silent.
        """
        owner = layout.foreign_owner(self._folder(point))
        notes = f"; {owner}" if owner else ""
        if result.dropped:
            notes += f"; dropped from {layout.RESULT_FILE}: {', '.join(result.dropped)}"
        if uncounted and self.experiment.experiment.max_gpu_hours is not None:
            notes += f"; its {result.device_hours:.3g} device-hours are not counted as GPU-hours "
            notes += f"([experiment] max_gpu_hours): {uncounted}"
        return notes

    def _rejected(self, point: Point, path: Path | None, reason: str) -> None:
        where = "" if path is None else f" as {path.name}"
        self.state.log("reject", f"result file set aside{where}: {reason}", point.id)

    def _ingest_by_hand(self) -> None:
        """A valid result that appears for an idle point (its script run by hand) counts too."""
        for point in self.state.with_status(*IDLE):
            if layout.point_folder_problem(self._folder(point)) is not None:
                continue  # read nothing through it: a ready point fails as it is prepared
            check = check_result(self._folder(point), point.id, point.params, self.measured)
            if check is None:
                continue
            if check.result is None:
                self._rejected(point, check.rejected, check.reason)
                continue
            job = ended_job_of(point, self._folder(point) / layout.RESULT_FILE)
            if job:
                self._record(point, check.result, f"job {job}, which had ended before the cancel")
            else:
                self._record(
                    point, check.result, "a job started outside the controller", by_hand=True
                )

    def _note_late_results(self) -> None:
        """Say once of each result file written for a measured point after its measurement.

        A person who runs a measured point's script again (to check a number)
        otherwise waits for a value that never shows: the point keeps its
        measurement (:func:`~nas.control.ingest.late_result_text`). One
        ``lstat`` per measured point and cycle; points measured before stamps
        were kept, or never in a folder (``record``, ``import``), are skipped.
        """
        for point in self.state.with_status(_S.DONE):
            recorded = point.extra.get(RESULT_STAMP)
            folder = self._folder(point)
            if recorded is None or layout.point_folder_problem(folder) is not None:
                continue
            stamp = result_stamp(folder)
            seen = (recorded, point.extra.get(LATE_RESULT_STAMP))
            if stamp is None or stamp in seen or point.value is None:
                continue
            text = late_result_text(folder, point.id, point.params, point.value, self.measured)
            self.state.update_point(point.id, extra={**point.extra, LATE_RESULT_STAMP: stamp})
            self.state.log(LATE_RESULT, text, point.id)

    # ------------------------------------------------------------------ proposing
    def _next_batch(self) -> Stop | None:
        stop, _ = next_batch(self.study)
        self.store.commit()  # new points, or the last fit of a stopped search; else a no-op
        return stop

    # ------------------------------------------------------------------ submitting
    def _submit_ready(self) -> None:
        """Submit incomplete points (next segment) first, then pending ones, up to the limit."""
        infeasible, submissions = submission_plan(self.state, self.experiment, self.feasible)
        for point, reason in infeasible:
            self.state.set_status(point.id, _S.INFEASIBLE, reason)
        for point, nxt in submissions:
            try:
                self.settings.prepare(self.run, nxt)
            except PREPARE_ERRORS as exc:  # the same every attempt: fail this point, go on
                self.state.set_status(point.id, _S.FAILED, f"its job cannot be prepared: {exc}")
                continue
            archive_outcome_files(self._folder(point), point.job_name or "earlier")
            self.state.update_point(
                point.id,
                attempts=nxt.attempts,
                segment=nxt.segment,
                job_name=nxt.job_name,
                job_id="",
            )
            self.state.set_status(point.id, _S.SUBMITTING, f"as {nxt.job_name}")
            self._launch(self.state.point(point.id))

    def _launch(self, point: Point) -> None:
        """Submit a ``submitting`` point and commit its job id (or its failure).

        The evidence of the submission is committed first, with the point's
        status, so that a controller started after a crash on any host knows
        a submitter may be running (:mod:`nas.cluster.submitter`).
        """
        folder = self._folder(point)
        evidence = Submission.begin(point.job_name, folder, self.scheduler.timeout)
        extra = {**self.state.point(point.id).extra, SUBMISSION: evidence.to_dict()}
        self.state.update_point(point.id, extra=extra)
        self.store.commit()
        try:
            job_id = self.scheduler.submit(
                folder / layout.JOB_SCRIPT, job_name=point.job_name, cwd=folder
            )
        except SubmissionInFlight as exc:
            log.warning("point %d: %s; re-checking next cycle", point.id, exc)
            return
        except SchedulerError as exc:
            if in_flight(evidence):
                log.warning("point %d: %s; its submitter still runs, re-checking next cycle",
                            point.id, exc)  # fmt: skip
                return
            try:
                found = self.scheduler.find_by_name([point.job_name])
            except SchedulerError:
                log.warning("point %d: %s; re-checking next cycle", point.id, exc)
                return
            if point.job_name not in found:
                self._failed(point, f"submission failed: {exc}")
                self.store.commit()
                return
            job_id = found[point.job_name][0]
        self._submitted_as(point, job_id, f"job {job_id}")
        self.store.commit()
        self._submitted.append(point.id)

    def _folder(self, point: Point) -> Path:
        """The point's folder: read or changed only once :meth:`_usable` (or, submitting,
        :meth:`JobSettings.prepare`) found a real folder there; the functions of
        :mod:`nas.control.ingest` refuse any other."""
        return layout.point_dir(self.run, point.id)

    # ------------------------------------------------------------------ reporting
    def summary(self, cycle: int, stop: Stop | None) -> CycleSummary:
        points = self.state.points
        counts = dict.fromkeys(COUNTED_AS.values(), 0)
        for point in points:
            counts[COUNTED_AS[point.status]] += 1
        best = self.study.best()
        gap = prediction_gap(points)
        return CycleSummary(
            cycle=cycle,
            counts=counts,
            best_id=None if best is None else best.id,
            best_value=None if best is None else best.value,
            gap=gap,
            gpu_hours=sum(p.gpu_hours for p in points),
            submitted=tuple(self._submitted),
            stop=stop,
            changes=tuple(self.state.events[self._first_event :]),
        )


def prediction_gap(points: list[Point]) -> float | None:
    """Smallest |measured - predicted| in the latest batch that has both (the stopping test)."""
    judged = [p for p in points if p.status is _S.DONE and p.judged_prediction is not None]
    if not judged:
        return None
    latest = max(p.batch for p in judged)
    return min(abs(p.value - p.judged_prediction) for p in judged if p.batch == latest)
