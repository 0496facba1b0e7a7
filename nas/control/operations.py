"""What a person may change in a running search: rerun, cancel, the point budget, the box.

Each operation works on a :class:`~nas.record.state.State` in memory and returns one
:class:`OperationResult` per point or design entry, so the same code serves a command
that holds the lock and a controller that applies a queued request
(:mod:`nas.control.inbox`). Every operation is idempotent: applied a second time it
finds its work done and changes nothing, because a controller that dies
between committing and deleting a request applies it again.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.cluster.base import Scheduler, SchedulerError
from nas.config import ConfigError, Experiment
from nas.control import policy
from nas.numbers import finite_number
from nas.record.state import EARLIER_ATTEMPTS, Point, PointStatus, State
from nas.search.space import Dim, Params, SearchSpace, SpaceError, params_text

if TYPE_CHECKING:
    from nas.control.constraints import Constraint
    from nas.control.costs import CostSource
    from nas.search.tradeoff import Predictor

#: ``Point.extra`` key of a point cancelled after its job had ended: that job's id and the
#: time of the cancel. A result file older than the cancel is the job's own, not one of a
#: run by hand (:meth:`nas.control.cycle.Cycle` labels its ingest by it).
ENDED_BEFORE_CANCEL = "ended_before_cancel"
#: Statuses a rerun resets to pending.
RERUNNABLE = frozenset({PointStatus.FAILED, PointStatus.INFEASIBLE, PointStatus.CANCELLED})
#: Statuses a cancel may withdraw; active ones first lose their job.
CANCELLABLE = frozenset(
    {
        PointStatus.PENDING,
        PointStatus.SUBMITTING,
        PointStatus.SUBMITTED,
        PointStatus.RUNNING,
        PointStatus.INCOMPLETE,
        PointStatus.FAILED,
    }
)

Bounds = Mapping[str, tuple[float | None, float | None]]


@dataclass(frozen=True)
class OperationResult:
    """What one operation did to one point (``point_id`` None: the state as a whole)."""

    point_id: int | None
    ok: bool
    changed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "point_id": self.point_id,
            "ok": self.ok,
            "changed": self.changed,
            "message": self.message,
        }


def _refused(point_id: int | None, message: str) -> OperationResult:
    return OperationResult(point_id, ok=False, changed=False, message=message)


def _unchanged(point_id: int | None, message: str) -> OperationResult:
    return OperationResult(point_id, ok=True, changed=False, message=message)


def _changed(point_id: int | None, message: str) -> OperationResult:
    return OperationResult(point_id, ok=True, changed=True, message=message)


def _each_point(
    state: State,
    ids: Iterable[int],
    *,
    done: PointStatus,
    allowed: frozenset[PointStatus],
    refusal: str,
    apply: Callable[[Point], OperationResult],
) -> list[OperationResult]:
    """``apply`` to each named point (once, in order) whose status is in ``allowed``.

    A point already ``done`` is left as it is, so the operation stays
    idempotent; an unknown id or another status is refused, ``refusal``
    saying which statuses the operation serves.
    """
    known = {p.id: p for p in state.points}
    outcomes = []
    for point_id in dict.fromkeys(ids):
        point = known.get(point_id)
        if point is None:
            outcomes.append(_refused(point_id, f"point {point_id}: no such point"))
        elif point.status is done:
            outcomes.append(_unchanged(point_id, f"point {point_id}: already {done.value}"))
        elif point.status not in allowed:
            message = f"point {point_id} is {point.status.value}; {refusal}"
            outcomes.append(_refused(point_id, message))
        else:
            outcomes.append(apply(point))
    return outcomes


# ---------------------------------------------------------------------------- rerun


def rerun(state: State, ids: Iterable[int], by: str) -> list[OperationResult]:
    """Reset failed, infeasible or cancelled points to pending with no attempts spent.

    The old status, reason, attempts and job go into the event log. The job
    name and id are cleared and ``extra["reruns"]`` counts the resets, so a
    new submission never reuses a name the scheduler still remembers.
    """
    return _each_point(
        state,
        ids,
        done=PointStatus.PENDING,
        allowed=RERUNNABLE,
        refusal="only failed, infeasible or cancelled points can be rerun",
        apply=lambda point: _rerun_point(state, point, by),
    )


def _rerun_point(state: State, point: Point, by: str) -> OperationResult:
    was = f"was {point.status.value} after {point.attempts} attempts"
    was += f", job {point.job_id}" if point.job_id else ""
    was += f": {point.reason}" if point.reason else ""
    state.set_status(point.id, PointStatus.PENDING, reason=f"rerun by {by} ({was})")
    extra = {**point.extra, "reruns": int(point.extra.get("reruns", 0)) + 1}
    if point.attempts:  # the budget's count of trainings must not forget them
        extra[EARLIER_ATTEMPTS] = _whole(point.extra.get(EARLIER_ATTEMPTS)) + point.attempts
    state.update_point(point.id, attempts=0, job_id="", job_name="", extra=extra)
    return _changed(point.id, f"point {point.id}: pending again ({was})")


def _whole(value: Any) -> int:
    """A count kept in ``extra``; anything else (a hand-edited file) counts as none."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------------- cancel


def cancel(
    state: State, ids: Iterable[int], scheduler: Scheduler | None, by: str
) -> list[OperationResult]:
    """Cancel the job of each point, if it has one that still runs, and mark it cancelled.

    A point whose job id was never recorded (a crash right after submission)
    is looked up by its job name. ``scheduler`` may be None only when no
    point has a job.
    """
    return _each_point(
        state,
        ids,
        done=PointStatus.CANCELLED,
        allowed=CANCELLABLE,
        refusal="nothing to cancel",
        apply=lambda point: _cancel_point(state, point, scheduler, by),
    )


def _cancel_point(
    state: State, point: Point, scheduler: Scheduler | None, by: str
) -> OperationResult:
    note, ended = "", ""
    if point.status.is_active():
        if scheduler is None:
            return _refused(point.id, f"point {point.id}: cancelling its job needs the scheduler")
        try:
            note, ended = _cancel_job(point, scheduler)
        except SchedulerError as exc:
            return _refused(point.id, f"point {point.id}: {exc}")
    state.set_status(point.id, PointStatus.CANCELLED, reason=f"cancelled by {by}{note}")
    if ended:
        extra = {**state.point(point.id).extra, ENDED_BEFORE_CANCEL: _ended(ended)}
        state.update_point(point.id, extra=extra)
    return _changed(point.id, f"point {point.id}: cancelled{note}")


def _cancel_job(point: Point, scheduler: Scheduler) -> tuple[str, str]:
    """Cancel the point's job unless it is over: a note for people, and the id of one over.

    A job that ended before the cancel may have left its measurement: the
    controller records it at its next cycle, as it records every result
    (a trained network is paid for), and the note says so.
    """
    job_id = point.job_id
    if not job_id and point.job_name:
        job_id = scheduler.find_by_name([point.job_name]).get(point.job_name, ("", None))[0]
    if not job_id:
        return " (no job had been submitted)", ""
    if scheduler.status([job_id])[job_id].is_finished():
        return f" (job {job_id} had ended; a result it wrote is still recorded)", job_id
    scheduler.cancel(job_id)
    return f" (job {job_id} cancelled)", ""


def _ended(job_id: str) -> dict[str, Any]:
    """What :data:`ENDED_BEFORE_CANCEL` holds: the job and when the cancel found it over."""
    return {"job": job_id, "time": time.time()}


def ended_job_of(point: Point, result: Path) -> str:
    """The job whose result ``result`` is, for a point cancelled after that job ended; else "".

    The file is the job's when it was written before the cancel: a run of the
    point's script by hand after the cancel writes a newer one. Anything in
    the mark that is not what :func:`_ended` wrote counts as no mark.
    """
    mark = point.extra.get(ENDED_BEFORE_CANCEL)
    if not isinstance(mark, dict) or not isinstance(mark.get("job"), str):
        return ""
    try:
        written = result.stat().st_mtime
    except OSError:
        return ""
    cancelled = mark.get("time")
    return mark["job"] if finite_number(cancelled) and written <= cancelled else ""


# ---------------------------------------------------------------------------- the budget


def set_budget(state: State, experiment: Experiment, points: int, by: str) -> OperationResult:
    """Set the point budget to ``points`` (``run --max-points``), logged as a ``budget`` event.

    Through :func:`nas.control.policy.raise_budget`, as ``expand --max-points``
    sets it, so every reader finds it in one place. The same budget again
    changes nothing.
    """
    old = policy.max_points(state, experiment)
    if points == old:
        return _unchanged(None, f"max_points is {points} already")
    policy.raise_budget(state, experiment, points, by)
    return _changed(None, f"max_points {old} -> {points}")


# ---------------------------------------------------------------------------- the box


@dataclass(frozen=True)
class Budget:
    """The point budget a box operation must respect: ``limit`` points, ``spent`` used."""

    limit: int
    spent: int

    @property
    def left(self) -> int:
        return max(self.limit - self.spent, 0)


def expand(
    state: State, bounds: Bounds, *, min_distance: float, budget: Budget | None = None
) -> list[OperationResult]:
    """Widen the box in any number of dimensions and add the final box's 2d+3 design.

    One design for the box after all the changes (origin ``"expand"``), never
    the designs of boxes in between. Every earlier point stays a support
    point, so the new bounds must contain the old ones; bounds that are the
    box's own change nothing (:func:`_same_box`). Design points already
    in the state, or closer than ``min_distance`` (unit box) to one, are
    skipped, and those beyond a bound of ``[experiment.constraints]`` left
    out (:func:`_bound_breaches`). A change that adds work begins a new phase of the search
    (:func:`nas.control.policy.start_phase`). The new box is held to the
    bounds of the model family's coordinates, and to the values an own
    ``[train] command`` can be filled with, as ``init`` holds the configured
    one (:func:`_box_problem`).

    Raises:
        SpaceError: an unknown or categorical dimension, bounds that shrink the box,
            or bounds the model family's coordinate or the command cannot take.
    """
    old = state.space
    space = _with_bounds(old, bounds)
    if space == old:
        return [_same_box(space, bounds)]
    for before, after in zip(old.numeric, space.numeric, strict=True):
        if after.low > before.low or after.high < before.high:
            raise SpaceError(
                f"dimension {after.name!r}: [{after.low}, {after.high}] does not contain the current "
                f"box [{before.low}, {before.high}]; use a refinement to add a sub-box"
            )
    problem = _box_problem(state, space)
    if problem is not None:
        raise SpaceError(problem)
    state.set_space(space)
    outcomes = _add_design(state, space.initial_design(), min_distance, budget, "expand")
    if not outcomes[-1].ok:
        state.set_space(old)  # refused: nothing changes
        return outcomes[-1:]
    if not any(o.changed for o in outcomes):  # nothing to measure, still a new box
        first = max((p.id for p in state.points), default=-1) + 1
        policy.start_phase(state, first, "expand: box widened")
    changes = _box_text(
        new for new, was in zip(space.numeric, old.numeric, strict=True) if new != was
    )
    state.log("expand", f"box widened: {changes}")
    outcomes.insert(0, _changed(None, f"box widened: {changes}"))
    return outcomes


def _same_box(space: SearchSpace, bounds: Bounds) -> OperationResult:
    """The outcome of an expand whose bounds are the box's own: nothing to do.

    Not a refusal: every operation finds work that is done already and
    changes nothing (a request applied again after a crash is one such).
    Adding the box's design anyway would begin a phase the person did not
    ask for; ``--refine`` over the box is the way to ask for it.
    """
    named = _box_text(dim for dim in space.numeric if dim.name in bounds)
    return _unchanged(
        None,
        f"box unchanged: {named} is the box already; no design added "
        "(--refine NAME=LOW:HIGH adds a design inside the box)",
    )


def _box_text(dims: Iterable[Dim]) -> str:
    """``x = [0, 1], w = [4, 60]``: numeric dimensions' bounds, for outcomes and events."""
    return ", ".join(f"{dim.name} = [{dim.low}, {dim.high}]" for dim in dims)


def refine(
    state: State, box: Bounds, *, min_distance: float, budget: Budget | None = None
) -> list[OperationResult]:
    """Add the 2d+3 design of a sub-box of the current box (origin ``"expand"``); a new phase.

    Its points are held to the box's points and bounds as :func:`expand`'s are.

    Raises:
        SpaceError: an unknown or categorical dimension, or a sub-box outside the box.
    """
    sub = _with_bounds(state.space, box)
    for outer, inner in zip(state.space.numeric, sub.numeric, strict=True):
        if inner.low < outer.low or inner.high > outer.high:
            raise SpaceError(
                f"dimension {inner.name!r}: [{inner.low}, {inner.high}] leaves the box "
                f"[{outer.low}, {outer.high}]; widen the box first"
            )
    outcomes = _add_design(state, sub.initial_design(), min_distance, budget, "refine")
    return outcomes if outcomes[-1].ok else outcomes[-1:]


def _box_problem(state: State, space: SearchSpace) -> str | None:
    """Why the jobs cannot take ``space``'s box, or None.

    ``init`` refuses a configured box past a coordinate's bounds (a width of
    at least 1, a depth of at most 256), or one with values an own ``[train]
    command`` cannot be filled with; a widened box must not let such a point
    in, or its job would die in the trainer or fail to be written. The checks
    are init's own (:func:`nas.control.prepare.widened_problems`), so the
    rules and their wording are declared once.
    """
    from nas.control.prepare import widened_problems  # loads the cluster backends: only here

    experiment = policy.experiment_of(state, "the state")
    if experiment.missing_run_sections():
        return None
    problems = widened_problems(dataclasses.replace(experiment, space=space))
    return problems[0].detail if problems else None


def _with_bounds(space: SearchSpace, bounds: Bounds) -> SearchSpace:
    for name, (low, high) in bounds.items():
        space = space.with_bounds(name, low, high)
    return space


def _add_design(
    state: State, design: list[Params], min_distance: float, budget: Budget | None, action: str
) -> list[OperationResult]:
    """Add the design points that are new, far enough from every point and within
    ``[experiment.constraints]``, as one batch.

    The last outcome sums up what was added, what the bounds left out and the
    budget left, or refuses (adding nothing) when the new points would exceed
    the budget or the bounds' costs cannot be computed.
    """
    try:
        breaches = _bound_breaches(state)
    except ConfigError as exc:
        return [_refused(None, f"{action} refused: {exc}")]
    outcomes, new, beyond = [], [], 0
    for params in design:
        skipped = _skipped(state, params, min_distance)
        broken = [] if skipped else breaches(params)
        if skipped:
            outcomes.append(skipped)
        elif broken:
            outcomes.append(
                _unchanged(None, f"{params_text(params)} left out: {'; '.join(broken)}")
            )
            beyond += 1
        elif state.space.key(params) not in {state.space.key(p) for p in new}:
            new.append(params)
    if budget is not None and len(new) > budget.left:
        return [
            _refused(
                None,
                f"{action} refused: its design adds {len(new)} points but the budget has "
                f"{budget.left} of {budget.limit} left; raise it with --max-points "
                f"{budget.spent + len(new)} or more",
            )
        ]
    if new:
        batch = state.next_batch()
        first = max((p.id for p in state.points), default=-1) + 1
        policy.start_phase(state, first, f"{action}: {len(new)} design points in batch {batch}")
        for params in new:
            added = state.add_point(params, "expand", batch)
            outcomes.append(
                _changed(added.id, f"point {added.id} added: {params_text(added.params)}")
            )
    left_out = f", {beyond} left out beyond [experiment.constraints]" if beyond else ""
    left = "" if budget is None else f"; {budget.left - len(new)} of {budget.limit} points left"
    outcomes.append(_unchanged(None, f"{action}: {len(new)} design points added{left_out}{left}"))
    return outcomes


def _skipped(state: State, params: Params, min_distance: float) -> OperationResult | None:
    """Why a design point is not added because of the points there are, or None."""
    point = state.find(params)
    if point is not None:
        return _unchanged(point.id, f"point {point.id} already has {params_text(params)}; skipped")
    near = _nearest(state, params)
    if near is not None and near[1] < min_distance:
        return _unchanged(
            near[0],
            f"{params} is {near[1]:.3g} from point {near[0]} (min_distance {min_distance:g}); "
            "skipped",
        )
    return None


def _bound_breaches(state: State) -> Callable[[Params], list[str]]:
    """Which bounds of ``[experiment.constraints]`` a candidate breaks, each with its cost.

    ``init`` leaves design points beyond a bound out, and no proposal breaks
    one: both keep to the study's rule (:meth:`nas.control.policy.Study.admissible`:
    a known cost within its limit, a measured one predicted within it with
    its error estimate). A design added to a running search keeps to the
    same rule, one bound at a time so that the outcome says which bound left
    a point out and what it costs there.

    Raises:
        ConfigError: a bound's cost that the experiment cannot compute.
    """
    from nas.control.constraints import candidate_rule, declared, sources
    from nas.control.costs import cost_predictor

    experiment = policy.experiment_of(state, "the state")
    rules = [
        (
            bound,
            source,
            candidate_rule(state, experiment, [bound]),
            cost_predictor(state, experiment, source),
        )
        for bound, source in sources(experiment, declared(experiment.experiment.constraints))
    ]

    def breaches(params: Params) -> list[str]:
        return [
            _breach_text(bound, source, cost, params)
            for bound, source, allows, cost in rules
            if not allows(params)
        ]

    return breaches


def _breach_text(bound: Constraint, source: CostSource, cost: Predictor, params: Params) -> str:
    """``lat = 31 breaks lat <= 9``: a known cost as computed, a measured one as predicted
    with its error estimate (what the rule held to the bound)."""
    values, errors = cost([params])
    value, error = float(values[0]), float(errors[0])
    if not math.isfinite(value):
        return f"{bound.name} cannot be computed for it, and {bound} admits no point without it"
    if source.known is not None:
        return f"{bound.name} = {value:.4g} breaks {bound}"
    return f"{bound.name} predicted {value:.4g} ± {error:.2g} breaks {bound}"


def _nearest(state: State, params: Params) -> tuple[int, float] | None:
    """The id of and unit-box distance to the nearest point of the same category."""
    category = state.space.category_of(params)
    points = state.points
    same = [i for i, p in enumerate(points) if state.space.category_of(p.params) == category]
    if not same:
        return None
    distances = np.linalg.norm(state.coords()[same] - state.space.to_unit(params), axis=1)
    best = int(np.argmin(distances))
    return points[same[best]].id, float(distances[best])
