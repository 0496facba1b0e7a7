"""Glue between a :class:`~nas.record.state.State` and the :class:`~nas.search.optimizer.SplineOptimizer`.

The optimizer keeps no state of its own between commands: every function
here rebuilds it from the state (measured points told with the prediction
they had when proposed; every other point marked pending so that nothing
is proposed on or near it), so an answer depends only on the state file and
the experiment's settings. No files or processes are touched here; callers
load and commit the state.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nas.config import Experiment, parse_experiment
from nas.record.state import FitRecord, Point, PointStatus, State
from nas.search.space import Params

if TYPE_CHECKING:
    from nas.search.optimizer import FitSummary, Proposal, SplineOptimizer

#: Points that will not be measured and do not count against ``max_points``.
_NOT_SPENT = frozenset({PointStatus.CANCELLED, PointStatus.INFEASIBLE})


class StudyError(RuntimeError):
    """A request the search cannot serve, e.g. a spent budget."""


def experiment_of(state: State, source: str) -> Experiment:
    """The experiment stored in ``state``; ``source`` names it in errors."""
    return parse_experiment(state.experiment_text, source)


def build_optimizer(
    state: State,
    experiment: Experiment,
    feasible: Callable[[Params], bool] | None = None,
) -> SplineOptimizer:
    """An optimizer that knows everything in ``state``.

    Measured points are told with their stored prediction (so convergence is
    judged on the prediction made when the point was proposed). Failed,
    infeasible and cancelled points are told as failures: never proposed
    again, and an initial-design point among them does not hold up the first
    fit. Points still to be measured are marked pending: in no fit, but
    nothing is proposed on or near them.
    """
    from nas.search.optimizer import (
        SplineOptimizer,  # scipy.stats: slow to import, only needed here
    )

    cfg = experiment.experiment
    optimizer = SplineOptimizer(
        state.space,
        batch_size=cfg.batch_size,
        tolerance=cfg.tolerance,
        seed=cfg.seed,
        goal=cfg.goal,
        strategy=cfg.strategy,
        smoothing=cfg.smoothing,
        min_distance=cfg.min_distance,
        feasible=feasible,
    )
    for point in state.points:
        if point.status is PointStatus.DONE:
            optimizer.tell(point.params, point.value, predicted=point.predicted)
        elif point.status.is_finished():
            with warnings.catch_warnings():  # a known failure, not a bad measurement
                warnings.simplefilter("ignore", RuntimeWarning)
                optimizer.tell(point.params, math.nan)
        else:
            optimizer.mark_pending(point.params)
    return optimizer


def budget_reason(state: State, experiment: Experiment, now: float | None = None) -> str | None:
    """Why no more points may be proposed (``max_points``, GPU-hours, wall time), or None."""
    cfg = experiment.experiment
    spent = [p for p in state.points if p.status not in _NOT_SPENT]
    if len(spent) >= cfg.max_points:
        return f"max_points reached: {len(spent)} points proposed of {cfg.max_points}"
    gpu_hours = sum(p.gpu_hours for p in state.points)
    if cfg.max_gpu_hours is not None and gpu_hours >= cfg.max_gpu_hours:
        return f"max_gpu_hours reached: {gpu_hours:.1f} of {cfg.max_gpu_hours:g} GPU-hours used"
    hours = ((time.time() if now is None else now) - state.created) / 3600.0
    if cfg.max_wall_hours is not None and hours >= cfg.max_wall_hours:
        return f"max_wall_hours reached: search started {hours:.1f} h ago (limit {cfg.max_wall_hours:g} h)"
    return None


def remaining_points(state: State, experiment: Experiment) -> int:
    """How many more points ``max_points`` allows."""
    spent = sum(p.status not in _NOT_SPENT for p in state.points)
    return max(experiment.experiment.max_points - spent, 0)


def propose_batch(
    state: State,
    experiment: Experiment,
    n: int | None = None,
    dry_run: bool = False,
    feasible: Callable[[Params], bool] | None = None,
) -> list[Point] | list[Proposal]:
    """Propose up to ``n`` points (default ``batch_size``) and store them as one pending batch.

    The remaining initial design comes first, then spline proposals; the
    number is capped by the ``max_points`` budget. A fit behind spline
    proposals is recorded in the state. With ``dry_run`` nothing is stored
    and the proposals are returned instead of points.

    Raises:
        StudyError: the budget is spent.
        SearchError: no feasible distinct candidate is left.
        SplineError: the measurements make an unstable system.
    """
    reason = budget_reason(state, experiment)
    if reason:
        raise StudyError(f"no more points may be proposed: {reason}")
    n = experiment.experiment.batch_size if n is None else n
    optimizer = build_optimizer(state, experiment, feasible)
    proposals = optimizer.suggest(min(n, remaining_points(state, experiment)))
    if dry_run:
        return proposals
    if any(p.origin == "incremental" for p in proposals):
        record_fit(state, optimizer.fit())
    batch = state.next_batch()
    return [state.add_point(p.params, p.origin, batch, predicted=p.predicted) for p in proposals]


def initial_batch(state: State, experiment: Experiment) -> list[Point]:
    """Store the whole initial design (within the budget) as batch 0."""
    size = len(state.space.initial_design())
    return propose_batch(state, experiment, n=size)


def record_fit(state: State, summary: FitSummary | None) -> None:
    """Store a fit: support point ids, coefficients per category, LOO error, argmax."""
    if summary is None:
        return
    support = [
        p.id
        for p in state.with_status(PointStatus.DONE)
        if state.space.category_of(p.params) in summary.splines
    ]
    coefficients = [
        float(c)
        for spline in summary.splines.values()
        for c in (*spline.coefficients, *spline.poly)
    ]
    state.add_fit(support, coefficients, summary.loo_rmse, summary.argmax, summary.predicted_max)


def current_fit(state: State) -> FitRecord | None:
    """The last stored fit when it is on exactly the measured points of the present box.

    Readers (``status``, ``report``) use it instead of fitting again, which
    needs scipy: slow to import on a login node.
    """
    if not state.fits:
        return None
    fit = state.fits[-1]
    measured = {p.id for p in state.with_status(PointStatus.DONE)}
    expanded = any(e.kind == "expand" and e.time >= fit.time for e in state.events)
    return fit if set(fit.support_ids) == measured and not expanded else None


def store_fit(state: State, experiment: Experiment) -> None:
    """Store the fit over every measured point unless it is stored already (a search's last fit)."""
    if current_fit(state) is None:
        record_fit(state, fit_summary(state, experiment))


def fit_summary(state: State, experiment: Experiment) -> FitSummary | None:
    """The fit over all measured points, or None while too few are measured."""
    return build_optimizer(state, experiment).fit()


def predict(
    state: State, experiment: Experiment, params: Mapping[str, Any]
) -> tuple[float, FitSummary]:
    """The spline's prediction at ``params`` and the fit that made it.

    Raises:
        StudyError: too few points are measured to fit a spline.
    """
    optimizer = build_optimizer(state, experiment)
    summary = optimizer.fit()
    if summary is None:
        raise StudyError(f"cannot predict yet: {fit_blocker(state)}")
    return optimizer.predict(params), summary


def is_converged(state: State, experiment: Experiment) -> bool:
    """Algorithm 1: a proposed point was measured within ``tolerance`` of its prediction."""
    return build_optimizer(state, experiment).converged


def best_point(state: State, experiment: Experiment) -> Point | None:
    """The best measured point (x_top), respecting the goal; ties go to the earlier point."""
    sign = 1.0 if experiment.experiment.goal == "maximize" else -1.0
    measured = state.with_status(PointStatus.DONE)
    return max(measured, key=lambda p: (sign * p.value, -p.id), default=None)


def add_manual(
    state: State,
    params: Mapping[str, Any],
    value: float | None = None,
    replace: bool = False,
) -> tuple[Point, bool]:
    """Add a point measured (or to be measured) by hand; return it and whether it is new.

    A point that exists already (after snapping) gets the value instead of a
    twin; a different value for a measured point needs ``replace``.
    """
    point = state.find(params)
    created = point is None
    if point is None:
        point = state.add_point(params, "manual", state.next_batch())
    if value is not None:
        point = state.record(point.id, value, replace=replace)
    return point, created


def fit_blocker(state: State) -> str:
    """Why no spline can be fitted yet, for people."""
    design = state.space.initial_design()
    measured = {state.space.key(p.params) for p in state.with_status(PointStatus.DONE)}
    missing = [p for p in design if state.space.key(p) not in measured]
    if missing:
        return f"{len(missing)} of {len(design)} initial-design points are not measured yet"
    return f"the measurements do not span the {state.space.d}-dim box yet"
