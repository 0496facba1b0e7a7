"""The trade-off search of ``[experiment] tradeoff``: proposals aimed at the front, and its stop rule.

The design comes first (:func:`design`: the cheapest corner, then points
spread over the known cost). Reads the state and the experiment, asks the optimizer for the metric's
predictions and their errors and :mod:`nas.control.costs` for the cost of
each candidate, and leaves the choice to :mod:`nas.search.tradeoff`
(hypervolume gain of the optimistic prediction, the believer rule across
the slots of a batch). The study (:mod:`nas.control.policy`) calls it in
place of the spline's argmax once the initial design is measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nas.config import ConfigError, Experiment
from nas.control.costs import CostSource, cost_predictor, cost_source, measured
from nas.record.state import ACTIVE, READY, State
from nas.search.settings import minimum_design_points
from nas.search.space import Params, SearchSpace

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


def measured_points(state: State, source: CostSource) -> list[MeasuredPoint]:
    """Every measured point with its cost, in id order."""
    return [
        MeasuredPoint(p.id, dict(p.params), float(p.value), source.of_point(p))
        for p in measured(state)
    ]


def measured_front(points: Sequence[MeasuredPoint], goal: str) -> list[MeasuredPoint]:
    """The non-dominated measured points (cost known), cheapest first."""
    from nas.search.pareto import nondominated

    keep = nondominated([p.metric for p in points], [p.cost for p in points], goal)
    return [points[i] for i in keep]


#: Cost-spread designs made in this process, by (experiment text, box): a controller
#: rebuilds its study every cycle.
_DESIGNS: dict[tuple[str, str], list[Params]] = {}
#: Event kind of an explicit ``[experiment] design`` that the cost-spread design replaces.
DESIGN_REPLACED = "design-replaced"
#: Event kind of an ``[experiment] design_points`` below d+1 that the cost-spread design raises.
DESIGN_POINTS_RAISED = "design-points-raised"
#: Event kind of an ``[experiment] design_points`` that the corner design has no use for.
DESIGN_POINTS_IGNORED = "design-points-ignored"


@dataclass(frozen=True)
class DesignCost:
    """The known cost a design is spread over, up to which quantile, and the setting that asks."""

    source: CostSource
    top: float
    why: str


def design_cost(experiment: Experiment) -> DesignCost | None:
    """The cost that replaces the experiment's ``design`` by a cost-spread one, or None.

    The trade-off's cost when it is known (up to the median of the box). None
    for a measured trade-off cost, which nothing knows before training, and
    without a trade-off: a search under ``[experiment.constraints]`` keeps the
    experiment's design, whose points beyond a bound are left out and topped
    up (:class:`nas.search.optimizer.SplineOptimizer`). Spread over the cost
    within the bound, as it was, the design put most of its points on the
    cheap networks a front needs and a bounded maximum does not; from the
    default space-filling design, with the argmax maximised within the bound,
    the bounded search reaches 1 % regret in 15 and 40 evaluations on the
    two problems of README "Constrained search", against 23.5 and 34 from
    the cost-spread design and 20 and 40 for the unbounded search
    (``benchmarks/results/constrained.md``).

    Raises:
        ConfigError: a known cost the experiment cannot compute (:func:`cost_source`).
    """
    from nas.search.tradeoff import DESIGN_TOP

    cfg = experiment.experiment
    if cfg.tradeoff is None:
        return None
    source = cost_source(experiment, cfg.tradeoff)
    why = f"tradeoff = {json.dumps(cfg.tradeoff)} is a known cost"
    return DesignCost(source, DESIGN_TOP, why) if source.known is not None else None


@dataclass(frozen=True)
class DesignNote:
    """A setting of the file that the cost-spread design overrides: an event kind and one line."""

    kind: str
    text: str


def design_notes(experiment: Experiment) -> list[DesignNote]:
    """What the initial design changes or ignores of the file's own settings, one note each.

    A cost-spread design replaces an ``[experiment] design`` the file sets
    (whatever its value: ``design = "space-filling"`` written out is a choice
    too) and raises a ``design_points`` below d+1 to d+1 (:func:`design_size`);
    without one, the corner design ignores ``design_points``
    (:func:`ignored_design_points`). No note for a cost the experiment cannot
    compute: ``init`` reports that problem.
    """
    try:
        cost = design_cost(experiment)
    except ConfigError:
        return []
    if cost is None:
        return ignored_design_points(experiment)
    cfg, source, notes = experiment.experiment, experiment.source, []
    if experiment.given("experiment", "design"):
        text = (
            f"{source}: [experiment] design: {cfg.design!r} is replaced by the cost-spread "
            f"design because {cost.why}; leave the key out to silence this note"
        )
        notes.append(DesignNote(DESIGN_REPLACED, text))
    size = design_size(experiment, experiment.space)
    if cfg.design_points is not None and size != cfg.design_points:
        text = (
            f"{source}: [experiment] design_points: {cfg.design_points} is raised to d+1 = "
            f"{size} for the cost-spread design because {cost.why} (a spline in "
            f"{experiment.space.d} dimensions needs {size} points); set at least {size} "
            "to silence this note"
        )
        notes.append(DesignNote(DESIGN_POINTS_RAISED, text))
    return notes


def ignored_design_points(experiment: Experiment) -> list[DesignNote]:
    """A note for an ``[experiment] design_points`` that the corner design ignores, if given.

    The corner design is the 2d+3 corners and centre (those that coincide
    once) whatever the file asks for; the number the file gives is never
    changed silently.
    """
    from nas.search.design import initial_design

    cfg = experiment.experiment
    settings = cfg.search_settings()
    if cfg.design_points is None or settings.design_kind != "corners":
        return []
    chosen = (
        f"design = {json.dumps(cfg.design)}"
        if experiment.given("experiment", "design")
        else f'strategy = {json.dumps(cfg.strategy)} (its design: "corners")'
    )
    shared = settings.category_model == "shared"
    size = len(initial_design(experiment.space, "corners", shared=shared))
    text = (
        f"{experiment.source}: [experiment] design_points: {cfg.design_points} is ignored: "
        f"with {chosen} the initial design is the corner design, {size} points (the box's "
        "corners and centre); "
        'leave the key out to silence this note, or set design = "space-filling" to use it'
    )
    return [DesignNote(DESIGN_POINTS_IGNORED, text)]


def design_size(experiment: Experiment, space: SearchSpace) -> int:
    """Points of a cost-spread design: ``design_points`` (default d+2), at least the
    d+1 that determine a spline."""
    from nas.search.design import default_size

    given = experiment.experiment.design_points
    return max(given or default_size(space), minimum_design_points(space))


def design(
    state: State, experiment: Experiment, admissible: Callable[[Params], bool] | None
) -> list[Params] | None:
    """The initial design of a trade-off search spread over its known cost
    (:func:`design_cost`), or None (the experiment's ``design``).

    :func:`nas.search.tradeoff.tradeoff_design` of :func:`design_size` points
    among the candidates ``admissible`` allows: a trade-off search under
    bounds spreads its points over the cost levels the bounds leave.
    """
    from nas.search.tradeoff import tradeoff_design

    cost = design_cost(experiment)
    if cost is None:
        return None
    cfg = experiment.experiment
    box = experiment.space  # the first box's, as expand leaves it (policy.Study.first_box)
    key = (experiment.text, repr(box.to_dict()))
    if key not in _DESIGNS:
        known = cost.source.known
        assert known is not None  # design_cost returns known costs only
        _DESIGNS[key] = tradeoff_design(
            box,
            lambda many: np.array([known(p) for p in many], dtype=float),
            design_size(experiment, box),
            cfg.seed,
            admissible,
            cost.top,
        )
    return _DESIGNS[key]


def metric_predictor(optimizer: SplineOptimizer) -> Predictor:
    """The metric's spline prediction and leave-one-out error at each candidate."""
    return lambda many: optimizer.predict_interval(list(many))


def _pool(
    state: State,
    experiment: Experiment,
    admissible: Callable[[Params], bool] | None,
    front: Sequence[MeasuredPoint],
    size: int | None,
) -> list[Params]:
    """Legal candidates around the front and across the box that the search may propose."""
    from nas.search.tradeoff import POOL_SIZE, candidate_pool

    cfg = experiment.experiment
    pool = candidate_pool(state.space, cfg.seed, [p.params for p in front], size or POOL_SIZE)
    return pool if admissible is None else [p for p in pool if admissible(p)]


def predicted_front(
    state: State,
    experiment: Experiment,
    optimizer: SplineOptimizer,
    admissible: Callable[[Params], bool] | None,
    source: CostSource,
    pool_size: int | None = None,
) -> list[PredictedPoint]:
    """The front of the spline's predictions over a candidate pool.

    The pool holds quasi-random legal points and random local steps around the
    measured front, less what the search may not propose (memory,
    ``[experiment.constraints]``) and the points the state holds (a measured one is
    no prediction: it showed with error 0); a known cost is computed, a measured one
    predicted. A predicted point that the measured front dominates is left out: it
    promises nothing the measurements have not reached.
    """
    from nas.search.tradeoff import predict_front

    goal = experiment.experiment.goal
    front = measured_front(measured_points(state, source), goal)
    held = {state.space.key(p.params) for p in state.points}
    pool = [
        p
        for p in _pool(state, experiment, admissible, front, pool_size)
        if state.space.key(p) not in held
    ]
    predicted = predict_front(
        pool, metric_predictor(optimizer), cost_predictor(state, experiment, source), goal
    )
    return [p for p in beyond_round_off(predicted, goal) if not dominated(p, front, goal)]


def dominated(point: PredictedPoint, front: Sequence[MeasuredPoint], goal: str) -> bool:
    """Whether a measured point is at least as good and as cheap as ``point``, better in one."""
    from nas.search.pareto import GOAL_SIGN

    sign = GOAL_SIGN[goal]
    return any(
        q.cost <= point.cost
        and sign * q.metric >= sign * point.metric
        and (q.cost, q.metric) != (point.cost, point.metric)
        for q in front
    )


#: A difference of predicted metrics this small against their scale is round-off: a spline
#: through equal measurements predicts 79.99999999999999, 80.0 and 80.00000000000001.
ROUND_OFF = 1e-9


def beyond_round_off(front: list[PredictedPoint], goal: str) -> list[PredictedPoint]:
    """``front`` (cheapest first) less each point that betters the cheaper one kept before it
    by no more than :data:`ROUND_OFF` of the metric's scale: it is no trade-off, only a
    costlier point of the same value."""
    from nas.search.pareto import GOAL_SIGN

    if not front:
        return front
    sign, scale = GOAL_SIGN[goal], max(abs(p.metric) for p in front)
    kept = [front[0]]
    for point in front[1:]:
        if sign * (point.metric - kept[-1].metric) > ROUND_OFF * scale:
            kept.append(point)
    return kept


def propose(
    state: State,
    experiment: Experiment,
    optimizer: SplineOptimizer,
    admissible: Callable[[Params], bool] | None,
    n: int,
) -> list[tuple[Params, float]]:
    """Up to ``n`` new candidates that add most to the (metric, cost) front: (params, prediction).

    :func:`nas.search.tradeoff.front_batch` on the measured points with a
    known cost, never a point the state holds; a new pool for every batch.
    Points still training count at their predictions (a refill, or
    ``propose`` again while they train).
    """
    from nas.search.tradeoff import front_batch

    cfg = experiment.experiment
    source = cost_source(experiment, cfg.tradeoff)
    points = [p for p in measured_points(state, source) if math.isfinite(p.cost)]
    costs = cost_predictor(state, experiment, source)
    ranking = ranking_predictor(optimizer)
    out = [p.params for p in state.with_status(*READY, *ACTIVE)]
    pending = list(zip(out, ranking(out)[0], costs(out)[0], strict=True)) if out else []
    picks = front_batch(
        state.space,
        ranking,
        lambda many: costs(many)[0],
        [(p.params, p.metric, p.cost) for p in points],
        n,
        seed=cfg.seed + len(state.points),
        goal=cfg.goal,
        admissible=admissible,
        taken=[p.params for p in state.points],
        pending=pending,
    )
    if not picks:
        return []
    exact = optimizer.predict_interval([params for params, _ in picks])[0]
    return [(params, float(value)) for (params, _), value in zip(picks, exact, strict=True)]


def ranking_predictor(optimizer: SplineOptimizer) -> Predictor:
    """What the front ranks candidates on: the metric's spline that also sees each failed
    point as the worst measured value, with the exact spline's error
    (:meth:`~nas.search.optimizer.SplineOptimizer.predict_interval_seeing_failures`).
    The front wants the costliest, most accurate networks, where trainings fail for
    lack of memory or walltime; ranked on the exact spline, the proposals after a
    failure were its neighbours. A proposal's stored prediction stays the exact one."""
    return lambda many: optimizer.predict_interval_seeing_failures(list(many))


@dataclass(frozen=True)
class FrontEvidence:
    """The trade-off stop rule's decision: predictions agree and no predicted point beats the front."""

    stop: bool
    gap: float
    where: Params | None
    reason: str


def evidence(
    state: State,
    experiment: Experiment,
    optimizer: SplineOptimizer,
    admissible: Callable[[Params], bool] | None,
    gaps: Sequence[float],
    agreements: int,
) -> FrontEvidence:
    """Stop when the last ``agreements`` proposals were measured within ``tolerance`` of
    their predictions (``gaps``, oldest first) and no point of the predicted front lies
    more than ``tolerance`` beyond the measured front at its cost."""
    from nas.search.tradeoff import front_gap

    cfg = experiment.experiment
    tolerance = cfg.tolerance
    agreed = len(gaps) >= agreements and all(g <= tolerance for g in gaps[-agreements:])
    if not agreed:
        return FrontEvidence(
            False,
            math.inf,
            None,
            f"the last {agreements} trade-off proposals are not all within tolerance "
            f"{tolerance:g} of their predictions yet",
        )
    source = cost_source(experiment, cfg.tradeoff)
    front = measured_front(measured_points(state, source), cfg.goal)
    predicted = predicted_front(state, experiment, optimizer, admissible, source)
    gap, where = front_gap(
        np.array([p.metric for p in front]), np.array([p.cost for p in front]), predicted, cfg.goal
    )
    if gap > tolerance:
        return FrontEvidence(
            False,
            gap,
            None if where is None else where.params,
            f"the predicted front lies {gap:.3g} beyond the measured one (tolerance "
            f"{tolerance:g}) at {cfg.tradeoff} {where.cost:.4g}"
            if where is not None
            else "no measured front yet",
        )
    return FrontEvidence(
        True,
        gap,
        None if where is None else where.params,
        f"the predicted front lies within {tolerance:g} of the measured one against "
        f"{cfg.tradeoff} and the last {agreements} proposals were predicted within it",
    )
