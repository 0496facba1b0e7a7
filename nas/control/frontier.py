"""A study's trade-off front and constraints: its measured points and costs, read through the search.

Glue between a :class:`~nas.control.policy.Study` and the pure numerics of
:mod:`nas.search.pareto` and :mod:`nas.search.tradeoff`: which points are
measured and what each costs (:mod:`nas.control.costs`), the metric's
predictions with their errors, and for a measured cost a spline of the
measured costs (with its own leave-one-out errors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nas.control.costs import CostSource, cost_source
from nas.control.policy import Study
from nas.record.state import PointStatus
from nas.search.space import Params

if TYPE_CHECKING:
    from nas.search.optimizer import SplineOptimizer
    from nas.search.tradeoff import PredictedPoint, Predictor


@dataclass(frozen=True)
class MeasuredPoint:
    """A measured point with its cost (NaN where the cost is unknown)."""

    id: int
    params: Params
    metric: float
    cost: float


def measured_points(study: Study, source: CostSource) -> list[MeasuredPoint]:
    """Every measured point of the study with its cost, in id order."""
    return [
        MeasuredPoint(p.id, dict(p.params), float(p.value), source.of_point(p))
        for p in study.state.with_status(PointStatus.DONE)
        if p.value is not None and math.isfinite(p.value)
    ]


def measured_front(points: Sequence[MeasuredPoint], goal: str) -> list[MeasuredPoint]:
    """The non-dominated measured points (cost known), cheapest first."""
    from nas.search.pareto import nondominated

    keep = nondominated([p.metric for p in points], [p.cost for p in points], goal)
    return [points[i] for i in keep]


def metric_predictor(study: Study) -> Predictor:
    """The metric's spline prediction and leave-one-out error at each candidate."""
    return lambda many: study.optimizer.predict_interval(list(many))


def cost_predictor(study: Study, source: CostSource) -> Predictor:
    """A known cost as computed (error 0), a measured one through a spline of the measured costs."""
    if source.known is not None:
        known = source.known

        def computed(many: Sequence[Params]) -> tuple[np.ndarray, np.ndarray]:
            values = np.array([known(p) for p in many], dtype=float)
            return values, np.zeros(len(many))

        return computed
    model = cost_model(study, source)

    def predicted(many: Sequence[Params]) -> tuple[np.ndarray, np.ndarray]:
        from nas.search.spline import SplineError

        try:
            return model.predict_interval(list(many))
        except SplineError:  # singular cost data: unknown, as before enough is measured
            return np.full(len(many), math.nan), np.full(len(many), math.nan)

    return predicted


def cost_model(study: Study, source: CostSource) -> SplineOptimizer:
    """A spline model of the measured cost ``source``, told every point that measured it.

    Its :meth:`~nas.search.optimizer.SplineOptimizer.predict_interval` is NaN
    while too few points measured the cost to fit a spline.
    """
    from nas.search.optimizer import SplineOptimizer
    from nas.search.settings import SearchSettings

    cfg = study.experiment.experiment
    model = SplineOptimizer(
        study.state.space, SearchSettings(seed=cfg.seed, smoothing=cfg.smoothing)
    )
    for point in measured_points(study, source):
        if math.isfinite(point.cost):
            model.tell(point.params, point.cost)
    return model


def predicted_front(
    study: Study, source: CostSource, pool_size: int | None = None
) -> list[PredictedPoint]:
    """The front of the spline's predictions over a candidate pool of the study's space.

    The pool holds quasi-random legal points and the lattice neighbours of the
    measured front, less what the study's feasibility predicate rejects.
    """
    from nas.search.tradeoff import POOL_SIZE, candidate_pool, predict_front

    cfg = study.experiment.experiment
    front = measured_front(measured_points(study, source), cfg.goal)
    pool = candidate_pool(
        study.state.space, cfg.seed, [p.params for p in front], pool_size or POOL_SIZE
    )
    if study.feasible is not None:
        pool = [p for p in pool if study.feasible(p)]
    return predict_front(pool, metric_predictor(study), cost_predictor(study, source), cfg.goal)


def source_for(study: Study, name: str | None) -> CostSource:
    """The cost source named ``name``; without a name the default cost, ``gmacs``."""
    return cost_source(study.experiment, name or "gmacs")
