"""The controller: poll -> ingest -> retry -> refit and propose -> render -> submit.

One :meth:`Controller.cycle` does every step once and commits; the loop in
:func:`nas.control.loop.run_controller` repeats it until the search converges or its budget is
spent. Only the controller writes the state, under the state's lock; jobs
only write files in their point folders (:mod:`nas.control.ingest` reads them).

Never lose, never duplicate: before a job is submitted the intent is
committed (the point becomes ``submitting`` with a job name unique to this
attempt and segment); after the scheduler answers, the job id is committed
(``submitted``). A controller that starts, or that finds a point still
``submitting``, first asks the scheduler for those job names: a job it knows
is re-attached; a name it does not know, with no result file, was never
submitted and is submitted now under the same name. A point therefore never
has two live jobs, and a result is recorded once, when the committed state
first sees it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from nas.cluster import JobState, Scheduler, SchedulerError
from nas.config import Experiment
from nas.control import inbox, policy
from nas.control.ingest import Verdict, archive_outcome_files, check_result, judge
from nas.control.prepare import JobSettings, feasibility, job_name
from nas.pointdir import layout
from nas.pointdir.result import Result
from nas.record.hdf5 import StateStore
from nas.record.state import ACTIVE, COUNTED_AS, IDLE, READY, Point, PointStatus

log = logging.getLogger(__name__)

_S = PointStatus


@dataclass(frozen=True)
class Stop:
    """Why the controller stops; ``ok`` is False when a person must act."""

    reason: str
    ok: bool = True


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
        self.feasible = feasibility(self.experiment)
        self.study = policy.Study(self.state, self.experiment, self.feasible)
        self._reattached = False
        self._submitted: list[int] = []

    # ------------------------------------------------------------------ the cycle
    def cycle(self) -> Stop | None:
        """Do every step once and commit; return why to stop, or None to go on."""
        self._submitted = []
        self._apply_inbox()
        if self._poll():
            self._ingest_by_hand()
        self.store.commit()
        stop = self._next_batch()
        self._submit_ready()
        return stop

    def _apply_inbox(self) -> None:
        """Requests of operator commands (rerun, cancel, expand), each applied and committed."""
        inbox.process(self.run, self.state, self.store.commit, self.scheduler)

    def _poll(self) -> bool:
        """Re-attach jobs by name where needed, poll the rest, judge the jobs that ended.

        Returns:
            False when the scheduler could not be asked for job names: nothing
            is judged this cycle, so nothing is submitted twice.
        """
        active = self.state.with_status(*ACTIVE)
        lookup = [p for p in active if p.status is _S.SUBMITTING or not self._reattached]
        try:
            found = self.scheduler.find_by_name(p.job_name for p in lookup) if lookup else {}
        except SchedulerError as exc:
            log.warning("cannot re-attach jobs, trying again next cycle: %s", exc)
            return False
        self._reattached = True
        gone: set[int] = set()
        for point in lookup:
            hit = found.get(point.job_name)
            if hit is not None:
                self._attach(point, hit[0])
            elif point.status is _S.SUBMITTING:
                self._resume_submission(point)
            else:
                gone.add(point.id)  # its job id may belong to another job by now
        watched = self.state.with_status(_S.SUBMITTED, _S.RUNNING)
        states = self.scheduler.status(p.job_id for p in watched if p.id not in gone)
        for point in watched:
            job_state = JobState.UNKNOWN if point.id in gone else states[point.job_id]
            if job_state is JobState.RUNNING and point.status is _S.SUBMITTED:
                self.state.set_status(point.id, _S.RUNNING, f"job {point.job_id}")
            elif job_state.is_finished() or job_state is JobState.UNKNOWN:
                self._job_ended(point, job_state)
        return True

    def _attach(self, point: Point, job_id: str) -> None:
        if point.job_id != job_id:
            self.state.update_point(point.id, job_id=job_id)
        if point.status is _S.SUBMITTING:
            self.state.set_status(point.id, _S.SUBMITTED, f"job {job_id} re-attached by name")

    def _resume_submission(self, point: Point) -> None:
        """A ``submitting`` point the scheduler does not know: its result, or submit it now."""
        check = check_result(self._folder(point), point.id, point.params)
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
            cancelled=job_state is JobState.CANCELLED,
            log=layout.log_path(self.run, point.id, point.job_name),
        )
        if check is not None and check.rejected is not None:
            self._rejected(point, check.rejected, check.reason)
        verdict, job = outcome.verdict, f"job {point.job_id}"
        if verdict is Verdict.DONE:
            assert outcome.result is not None  # a DONE outcome carries its result
            self._record(point, outcome.result, job)
        elif verdict is Verdict.CANCELLED:
            self.state.set_status(point.id, _S.CANCELLED, f"{job}: {outcome.detail}")
        elif verdict is Verdict.INFEASIBLE:
            self.state.set_status(point.id, _S.INFEASIBLE, f"{job}: {outcome.detail}")
        elif verdict is Verdict.INCOMPLETE:
            self._incomplete(point, outcome.position, f"{job}: {outcome.detail}")
        else:
            self._failed(point, f"{job} ({self.scheduler.reason(point.job_id)}): {outcome.detail}")

    def _incomplete(self, point: Point, position: tuple[int, int] | None, reason: str) -> None:
        """Next segment, unless this one made no progress (the walltime is too short)."""
        before = tuple(point.extra.get("position", (0, 0)))
        if position is None or position <= before:
            self._failed(point, f"{reason}, but the segment made no progress past {before}")
            return
        self.state.update_point(point.id, extra={**point.extra, "position": list(position)})
        self.state.set_status(point.id, _S.INCOMPLETE, reason)

    def _failed(self, point: Point, reason: str) -> None:
        """Retry up to ``max_attempts``, then leave the point failed for a person."""
        limit = self.experiment.cluster.max_attempts
        if point.attempts < limit:
            self.state.set_status(
                point.id, _S.FAILED, f"attempt {point.attempts} of {limit}: {reason}"
            )
            self.state.set_status(point.id, _S.PENDING, f"retry {point.attempts + 1} of {limit}")
        else:
            self.state.set_status(point.id, _S.FAILED, f"gave up after {limit} attempts: {reason}")

    def _record(self, point: Point, result: Result, source: str) -> None:
        value = result.metrics[self.experiment.experiment.metric]
        self.state.update_point(point.id, gpu_hours=result.gpu_hours)
        self.state.record(point.id, value)
        note = "" if point.status.is_active() else f" for a {point.status.value} point"
        self.state.log("ingest", f"result of {source}{note}: {value:.6g}", point.id)

    def _rejected(self, point: Point, path: Path | None, reason: str) -> None:
        where = "" if path is None else f" as {path.name}"
        self.state.log("reject", f"result file set aside{where}: {reason}", point.id)

    def _ingest_by_hand(self) -> None:
        """A valid result that appears for an idle point (its script run by hand) counts too."""
        for point in self.state.with_status(*IDLE):
            check = check_result(self._folder(point), point.id, point.params)
            if check is None:
                continue
            if check.result is None:
                self._rejected(point, check.rejected, check.reason)
            else:
                self._record(point, check.result, "a job started outside the controller")

    # ------------------------------------------------------------------ proposing
    def _next_batch(self) -> Stop | None:
        stop, points = next_batch(self.study)
        if points:
            self.store.commit()
        return stop

    # ------------------------------------------------------------------ submitting
    def _submit_ready(self) -> None:
        """Submit incomplete points (next segment) first, then pending ones, up to the limit."""
        self._exclude_infeasible()
        slots = self.experiment.cluster.max_concurrent_jobs - len(self.state.with_status(*ACTIVE))
        for point in ready_points(self.state.points)[: max(slots, 0)]:
            nxt = next_submission(point, self.experiment.experiment.name)
            self.settings.prepare(self.run, nxt)
            archive_outcome_files(self._folder(point), point.job_name or "earlier")
            self.state.update_point(
                point.id,
                attempts=nxt.attempts,
                segment=nxt.segment,
                job_name=nxt.job_name,
                job_id="",
            )
            self.state.set_status(point.id, _S.SUBMITTING, f"as {nxt.job_name}")
            self.store.commit()
            self._launch(self.state.point(point.id))

    def _exclude_infeasible(self) -> None:
        """Never queue a pending point (the initial design too) that cannot fit a GPU."""
        if self.feasible is None:
            return
        limit = self.experiment.cluster.max_gpu_memory_gb
        for point in self.state.with_status(_S.PENDING):
            if not self.feasible(point.params):
                reason = f"estimated peak memory per GPU exceeds max_gpu_memory_gb = {limit}"
                self.state.set_status(point.id, _S.INFEASIBLE, reason)

    def _launch(self, point: Point) -> None:
        """Submit a ``submitting`` point and commit its job id (or its failure)."""
        script = self._folder(point) / layout.JOB_SCRIPT
        try:
            job_id = self.scheduler.submit(script, job_name=point.job_name, cwd=self._folder(point))
        except SchedulerError as exc:
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
        self.state.update_point(point.id, job_id=job_id)
        self.state.set_status(point.id, _S.SUBMITTED, f"job {job_id}")
        self.store.commit()
        self._submitted.append(point.id)

    def _folder(self, point: Point) -> Path:
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
        )


def prediction_gap(points: list[Point]) -> float | None:
    """Smallest |measured - predicted| in the latest batch that has both (the stopping test)."""
    judged = [p for p in points if p.status is _S.DONE and p.predicted is not None]
    if not judged:
        return None
    latest = max(p.batch for p in judged)
    return min(abs(p.value - p.predicted) for p in judged if p.batch == latest)


def next_batch(study: policy.Study, *, dry_run: bool = False) -> tuple[Stop | None, list]:
    """When no point is unfinished: why to stop (converged, budget) or the next batch.

    The first batch is the whole initial design, later ones ``batch_size``
    spline proposals. Returns the stored points (proposals with ``dry_run``).
    """
    state = study.state
    if state.with_status(*READY, *ACTIVE):
        return None, []
    from nas.search.propose import SearchError
    from nas.search.spline import SplineError

    if state.points and study.converged():
        best = study.best()
        where = "" if best is None else f"; best point {best.id} = {best.value:.6g}"
        return Stop(f"converged: {study.stop_evidence().reason}{where}"), []
    reason = study.budget_reason()
    if reason:
        return Stop(reason), []
    design = len(study.optimizer.initial_design())
    size = study.experiment.experiment.batch_size if state.points else design
    try:
        made = study.propose(size, dry_run=dry_run)
    except SearchError as exc:
        return Stop(f"no candidate left to propose: {exc}"), []
    except (SplineError, policy.StudyError) as exc:
        return Stop(f"cannot propose: {exc}", ok=False), []
    if not made:
        return Stop(f"nothing to propose: {study.fit_blocker()}", ok=False), []
    return None, made


def ready_points(points: list[Point]) -> list[Point]:
    """Points waiting for a job: incomplete ones (training under way) first, then by id."""
    return sorted(
        (p for p in points if p.status in READY),
        key=lambda p: (p.status is not _S.INCOMPLETE, p.id),
    )


def next_submission(point: Point, experiment: str) -> Point:
    """The point as its next job will see it: the next segment, or the next attempt."""
    if point.status is _S.INCOMPLETE:
        nxt = dataclasses.replace(point, segment=point.segment + 1)
    else:
        nxt = dataclasses.replace(point, attempts=point.attempts + 1)
    return dataclasses.replace(nxt, job_name=job_name(experiment, nxt))
