"""Glue between a :class:`~nas.record.state.State` and the :class:`~nas.search.optimizer.SplineOptimizer`.

The optimizer keeps no state of its own between commands: a :class:`Study`
rebuilds it from the state (measured points told with the prediction
they had when proposed; every other point marked pending so that nothing
is proposed on or near it), so an answer depends only on the state file and
the experiment's settings. No files or processes are touched here; callers
load and commit the state.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nas.config import Experiment, parse_experiment
from nas.record.state import Point, PointStatus, State
from nas.search.space import Params

if TYPE_CHECKING:
    from nas.search.optimizer import FitSummary, Proposal, SplineOptimizer

#: Points that will not be measured and do not count against ``max_points``.
_NOT_SPENT = frozenset({PointStatus.CANCELLED, PointStatus.INFEASIBLE})


class StudyError(RuntimeError):
    """A request the search cannot serve, e.g. a spent budget."""


def experiment_of(state: State, state_path: str | os.PathLike) -> Experiment:
    """The experiment stored in the state at ``state_path``; errors name that file."""
    return parse_experiment(state.experiment_text, f"{state_path}:experiment_toml")


class Study:
    """One search: its state, its experiment (parsed once) and the optimizer built from both.

    The optimizer is rebuilt only when the state has changed since it was
    built (``State.revision``), so a cycle that asks whether the search
    converged, what is best and what to propose next builds it once.

    Measured points are told with their stored prediction (so convergence is
    judged on the prediction made when the point was proposed). Failed,
    infeasible and cancelled points are told as failures: never proposed
    again, and an initial-design point among them does not hold up the first
    fit. Points still to be measured are marked pending: in no fit, but
    nothing is proposed on or near them.
    """

    def __init__(
        self,
        state: State,
        experiment: Experiment,
        feasible: Callable[[Params], bool] | None = None,
    ) -> None:
        self.state = state
        self.experiment = experiment
        self.feasible = feasible
        self._optimizer: SplineOptimizer | None = None
        self._built_at = -1

    @classmethod
    def of(
        cls,
        state: State,
        state_path: str | os.PathLike,
        feasible: Callable[[Params], bool] | None = None,
    ) -> Study:
        """The study of the state read from ``state_path``."""
        return cls(state, experiment_of(state, state_path), feasible)

    @property
    def optimizer(self) -> SplineOptimizer:
        """An optimizer that knows everything in the state as it is now."""
        if self._optimizer is None or self._built_at != self.state.revision:
            self._optimizer = self._build()
            self._built_at = self.state.revision
        return self._optimizer

    def _build(self) -> SplineOptimizer:
        from nas.search.optimizer import (
            SplineOptimizer,  # scipy.stats: slow to import, only needed here
        )

        cfg = self.experiment.experiment
        optimizer = SplineOptimizer(
            self.state.space,
            batch_size=cfg.batch_size,
            tolerance=cfg.tolerance,
            seed=cfg.seed,
            goal=cfg.goal,
            strategy=cfg.strategy,
            smoothing=cfg.smoothing,
            min_distance=cfg.min_distance,
            feasible=self.feasible,
        )
        for point in self.state.points:
            if point.status is PointStatus.DONE:
                optimizer.tell(point.params, point.value, predicted=point.predicted)
            elif point.status.is_finished():
                with warnings.catch_warnings():  # a known failure, not a bad measurement
                    warnings.simplefilter("ignore", RuntimeWarning)
                    optimizer.tell(point.params, math.nan)
            else:
                optimizer.mark_pending(point.params)
        return optimizer

    # ------------------------------------------------------------------ budget
    def budget_reason(self, now: float | None = None) -> str | None:
        """Why no more points may be proposed (``max_points``, GPU-hours, wall time), or None."""
        cfg = self.experiment.experiment
        spent = [p for p in self.state.points if p.status not in _NOT_SPENT]
        if len(spent) >= cfg.max_points:
            return f"max_points reached: {len(spent)} points proposed of {cfg.max_points}"
        gpu_hours = sum(p.gpu_hours for p in self.state.points)
        if cfg.max_gpu_hours is not None and gpu_hours >= cfg.max_gpu_hours:
            return f"max_gpu_hours reached: {gpu_hours:.1f} of {cfg.max_gpu_hours:g} GPU-hours used"
        hours = ((time.time() if now is None else now) - self.state.created) / 3600.0
        if cfg.max_wall_hours is not None and hours >= cfg.max_wall_hours:
            return f"max_wall_hours reached: search started {hours:.1f} h ago (limit {cfg.max_wall_hours:g} h)"
        return None

    def remaining_points(self) -> int:
        """How many more points ``max_points`` allows."""
        spent = sum(p.status not in _NOT_SPENT for p in self.state.points)
        return max(self.experiment.experiment.max_points - spent, 0)

    # ------------------------------------------------------------------ proposing
    def propose(self, n: int | None = None, dry_run: bool = False) -> list[Point] | list[Proposal]:
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
        reason = self.budget_reason()
        if reason:
            raise StudyError(f"no more points may be proposed: {reason}")
        n = self.experiment.experiment.batch_size if n is None else n
        optimizer = self.optimizer
        self._optimizer = None  # suggesting marks the proposals pending in it
        proposals = optimizer.suggest(min(n, self.remaining_points()))
        if dry_run:
            return proposals
        if any(p.origin == "incremental" for p in proposals):
            self._record_fit(optimizer.fit())
        batch = self.state.next_batch()
        return [
            self.state.add_point(p.params, p.origin, batch, predicted=p.predicted)
            for p in proposals
        ]

    def initial_batch(self) -> list[Point]:
        """Store the whole initial design (within the budget) as batch 0."""
        return self.propose(n=len(self.state.space.initial_design()))

    def _record_fit(self, summary: FitSummary | None) -> None:
        """Store a fit: support point ids, coefficients per category, LOO error, argmax."""
        if summary is None:
            return
        support = [
            p.id
            for p in self.state.with_status(PointStatus.DONE)
            if self.state.space.category_of(p.params) in summary.splines
        ]
        coefficients = [
            float(c)
            for spline in summary.splines.values()
            for c in (*spline.coefficients, *spline.poly)
        ]
        self.state.add_fit(
            support, coefficients, summary.loo_rmse, summary.argmax, summary.predicted_max
        )

    # ------------------------------------------------------------------ answers
    def fit_summary(self) -> FitSummary | None:
        """The fit over all measured points, or None while too few are measured."""
        return self.optimizer.fit()

    def predict(self, params: Mapping[str, Any]) -> tuple[float, FitSummary]:
        """The spline's prediction at ``params`` and the fit that made it.

        Raises:
            StudyError: too few points are measured to fit a spline.
        """
        summary = self.fit_summary()
        if summary is None:
            raise StudyError(f"cannot predict yet: {self.fit_blocker()}")
        return self.optimizer.predict(params), summary

    def converged(self) -> bool:
        """Algorithm 1: a proposed point was measured within ``tolerance`` of its prediction.

        A scan of the stored points (as the optimizer's own test), so that
        ``status`` never builds an optimizer over every point.
        """
        tolerance = self.experiment.experiment.tolerance
        return any(
            p.predicted is not None
            and math.isfinite(p.value)
            and abs(p.value - p.predicted) <= tolerance
            for p in self.state.with_status(PointStatus.DONE)
        )

    def best(self) -> Point | None:
        """The best measured point (x_top), respecting the goal; ties go to the earlier point."""
        sign = 1.0 if self.experiment.experiment.goal == "maximize" else -1.0
        measured = self.state.with_status(PointStatus.DONE)
        return max(measured, key=lambda p: (sign * p.value, -p.id), default=None)

    def fit_blocker(self) -> str:
        """Why no spline can be fitted yet, for people."""
        state = self.state
        design = state.space.initial_design()
        measured = {state.space.key(p.params) for p in state.with_status(PointStatus.DONE)}
        missing = [p for p in design if state.space.key(p) not in measured]
        if missing:
            return f"{len(missing)} of {len(design)} initial-design points are not measured yet"
        return f"the measurements do not span the {state.space.d}-dim box yet"


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
