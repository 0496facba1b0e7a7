"""Predicted trade-off fronts and proposals aimed at them.

A trade-off search measures the front of (metric, cost) instead of one
maximum. It starts from its own design (:func:`tradeoff_design`: the
cheapest corner, then points spread over the log cost up to the median of
the box). Between measurements the spline predicts the metric of every
candidate of a pool (legal quasi-random points plus random local steps
around the measured front) with the leave-one-out error of
:mod:`nas.search.uncertainty`; the cost is computed (known costs) or
predicted by a second spline (measured costs).

Proposals: each batch slot takes the candidate whose predicted point (the
metric as predicted, plus ``OPTIMISM`` error estimates towards the goal; the
cost as computed or predicted) adds the most hypervolume to the measured
front plus the slots already taken (at their predictions: the believer rule
on the front). Compared in ``benchmarks/tradeoff.py`` with random Chebyshev
scalarisations per slot (ParEGO) and with the metric-only search.

Stop rule: the search has found the front when no candidate's *prediction*
lies more than ``tolerance`` (in metric units) beyond the measured front at
its cost, and the last batch's proposals were measured within ``tolerance``
of their predictions (:func:`front_gap`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc

from nas.search.dycors import subspace_perturb
from nas.search.pareto import GOAL_SIGN, hypervolume_gain, nondominated
from nas.search.space import Params, SearchSpace

#: Error estimates added to a prediction before its hypervolume gain is taken. An
#: upper-confidence bonus (1 or 2) sent the search to far, costly corners and reached
#: less of the front in 40 and 60 evaluations on nas5 than none (0 and 0.3 tried too).
OPTIMISM = 0.0

#: Quasi-random candidates per category in a pool, before the neighbours of the front.
POOL_SIZE = 256
#: The most a person may ask for: a pool's Sobol points are drawn at once (2^20 in eight
#: dimensions are 64 MiB, and a second or so of drawing); 10^8 asked by a slip ran for minutes.
MAX_POOL_SIZE = 2**20

#: Predictor: parameters -> (values, errors) in their units (NaN where unknown).
Predictor = Callable[[Sequence[Params]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class PredictedPoint:
    """A candidate on the predicted front: metric and cost, each with its error estimate."""

    params: Params
    metric: float
    metric_error: float
    cost: float
    cost_error: float = 0.0


#: Perturbations of each measured front point in a pool, and their scales (unit-box
#: standard deviations): the spline predicts best near what it has measured, and the
#: front moves by local steps once its ends are known (DYCORS-style candidates,
#: Regis & Shoemaker 2013: each perturbs a random subset of the coordinates). Steps of
#: one lattice unit gained hypervolume by predicted hair's breadths and were left out.
LOCAL_CANDIDATES = 24
LOCAL_SCALES = (0.05, 0.1, 0.2)


def candidate_pool(
    space: SearchSpace,
    seed: int,
    around: Sequence[Params] = (),
    size: int = POOL_SIZE,
    local: int = LOCAL_CANDIDATES,
) -> list[Params]:
    """Distinct legal candidates: ``size`` Sobol points per category, and around every
    point of ``around`` (e.g. the measured front) ``local`` random perturbations at
    the scales of :data:`LOCAL_SCALES`.

    Deterministic for a given seed; ``around`` points themselves are left out.
    """
    rng = np.random.default_rng([seed, 7])
    out: dict[tuple, Params] = {}
    skip = {space.key(p) for p in around}

    def add(params: Params) -> None:
        key = space.key(params)
        if key not in skip:
            out.setdefault(key, params)

    for cat in space.categories():
        for x in _sobol_unit(space, size, rng):
            add(space.from_unit(x, cat))
    for params in around:
        cat = space.category_of(params)
        centre = space.to_unit(params)
        for x in _perturbed(space, centre, local, rng):
            add(space.from_unit(x, cat))
    return list(out.values())


def _sobol_unit(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` scrambled Sobol points snapped to the legal grid (one empty row without dims)."""
    if not space.d:
        return np.zeros((1, 0))
    sampler = qmc.Sobol(space.d, scramble=True, seed=rng)
    with warnings.catch_warnings():  # any size will do for a pool
        warnings.simplefilter("ignore", UserWarning)
        return space.snap_unit(sampler.random(n))


def _perturbed(
    space: SearchSpace, centre: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` legal unit points near ``centre``: Gaussian steps on a random subset of
    coordinates, at the scales of :data:`LOCAL_SCALES` in turn, clipped onto the faces."""
    if not space.d or n < 1:
        return np.zeros((0, space.d))
    scales = np.array(LOCAL_SCALES)[np.arange(n) % len(LOCAL_SCALES)]
    probability = min(1.0, 2.0 / space.d) + 0.25
    return space.snap_unit(subspace_perturb(centre, scales, n, probability, rng, boundary="clip"))


#: Sobol candidates a trade-off design chooses from, per category.
DESIGN_POOL = 1024
#: Candidates nearest each cost level of a trade-off design among which the one
#: farthest from the points already chosen is taken.
DESIGN_BAND = 24
#: The costliest level of a trade-off design: this quantile of the pool's (log) cost.
#: A front ends at the best metric, which a NAS box rarely holds at its costliest
#: corners; levels up to the pool's maximum spent half the design beyond the front
#: (benchmarks/results/tradeoff.md).
DESIGN_TOP = 0.5


def _cost_scale(costs: np.ndarray) -> np.ndarray:
    """Costs on the scale a design spreads over: logarithmic when all are positive.

    Known costs such as MACs and parameters are products of widths and depths,
    spanning orders of magnitude across a box, and a metric tends to grow with
    the logarithm of the cost: even steps in log cost cover the front evenly.
    """
    return np.log(costs) if np.all(costs > 0) else costs


def _spread(x: np.ndarray, level: np.ndarray, n: int, top: float = DESIGN_TOP) -> list[int]:
    """``n`` rows of ``x``: the lowest ``level`` first, then one per even step of ``level``
    up to its highest, each the candidate near its step farthest from those chosen."""
    chosen = [int(np.argmin(level))]
    targets = np.linspace(level.min(), np.quantile(level, top), max(n, 2))[1:]
    for target in targets[: n - 1]:
        free = np.setdiff1d(np.arange(len(x)), chosen)
        if free.size == 0:
            break
        near = free[np.argsort(np.abs(level[free] - target), kind="stable")[:DESIGN_BAND]]
        gaps = np.linalg.norm(x[near, None, :] - x[None, chosen, :], axis=2).min(axis=1)
        chosen.append(int(near[np.argmax(gaps)]))
    return chosen


def tradeoff_design(
    space: SearchSpace,
    cost: Callable[[Sequence[Params]], np.ndarray],
    n: int,
    seed: int,
    admissible: Callable[[Params], bool] | None = None,
    top: float = DESIGN_TOP,
) -> list[Params]:
    """An initial design for a trade-off search: the cheapest corner, then points spread
    over the cost and the box.

    The all-low corner is the cheapest candidate of a box whose costs grow with
    its coordinates (widths, depths), so it is an end of the true front; the
    corner design instead spends most of its 2d+3 points on costly corners far
    beyond the front. The other ``n - 1`` points of each category come from a
    Sobol pool: point i aims at the i-th of even steps of the (log) cost from
    the cheapest candidate to the :data:`DESIGN_TOP` quantile and is, of the :data:`DESIGN_BAND`
    candidates nearest that cost, the one farthest from the points already
    chosen (maximin), so the design spans both the cost range and the box.
    Candidates ``admissible`` refuses, and those whose cost is unknown, are
    left out.
    """
    rng = np.random.default_rng([seed, 13])
    out: dict[tuple, Params] = {}
    for cat in space.categories():
        unit = np.vstack([np.zeros((1, space.d)), _sobol_unit(space, DESIGN_POOL, rng)])
        pool = [space.from_unit(x, cat) for x in space.snap_unit(unit)]
        keep = [i for i, p in enumerate(pool) if admissible is None or admissible(p)]
        if not keep:
            continue
        costs = np.asarray(cost([pool[i] for i in keep]), dtype=float)
        known = np.isfinite(costs)
        keep, costs = [k for k, ok in zip(keep, known, strict=True) if ok], costs[known]
        if not keep:
            continue
        x = space.to_unit_many([pool[i] for i in keep])
        chosen = _spread(x, _cost_scale(costs), n, top)
        for i in chosen:
            params = pool[keep[i]]
            out.setdefault(space.key(params), params)
    return list(out.values())


def predict_front(
    pool: Sequence[Params],
    metric: Predictor,
    cost: Predictor,
    goal: str = "maximize",
) -> list[PredictedPoint]:
    """The non-dominated points of the pool's predictions, cheapest first."""
    if not pool:
        return []
    m, m_err = metric(pool)
    c, c_err = cost(pool)
    keep = nondominated(m, c, goal)
    return [
        PredictedPoint(pool[i], float(m[i]), float(m_err[i]), float(c[i]), float(c_err[i]))
        for i in keep
    ]


def front_gap(
    front_metric: np.ndarray,
    front_cost: np.ndarray,
    predicted: Sequence[PredictedPoint],
    goal: str = "maximize",
) -> tuple[float, PredictedPoint | None]:
    """How far the predicted front lies beyond the measured one, in metric units.

    For each predicted point: its predicted metric minus the best measured
    metric at no higher cost (oriented by ``goal``; a point cheaper than every
    measured one is compared with the worst measured metric). Returns the
    largest such gap (<= 0: the prediction adds nothing) and the point.
    """
    sign = GOAL_SIGN[goal]
    gain = sign * np.asarray(front_metric, dtype=float)
    fc = np.asarray(front_cost, dtype=float)
    if gain.size == 0:
        return math.inf, None
    floor = float(gain.min())
    worst, where = -math.inf, None
    for point in predicted:
        cheaper = gain[fc <= point.cost]
        attained = float(cheaper.max()) if cheaper.size else floor
        gap = sign * point.metric - attained
        if math.isfinite(gap) and gap > worst:
            worst, where = gap, point
    return worst, where


def propose_front(
    pool: Sequence[Params],
    predicted: np.ndarray,
    error: np.ndarray,
    cost: np.ndarray,
    measured_metric: np.ndarray,
    measured_cost: np.ndarray,
    q: int,
    reference: tuple[float, float],
    goal: str = "maximize",
    optimism: float = OPTIMISM,
) -> list[tuple[Params, float, float]]:
    """Up to ``q`` candidates of the pool that add the most hypervolume: (params, predicted, gain).

    ``predicted``, ``error`` and ``cost`` are the pool's metric predictions,
    their error estimates and its costs. Each slot takes the candidate whose
    optimistic point (prediction + ``optimism`` x error towards the goal; the
    cost as given) adds the most hypervolume to the measured front and the
    slots already taken (at their predictions). When no candidate adds any,
    the slot takes the best predicted metric of the rest, so a batch is
    always filled while the pool lasts.
    """
    if not pool or q < 1:
        return []
    sign = GOAL_SIGN[goal]
    m, c = np.asarray(predicted, dtype=float), np.asarray(cost, dtype=float)
    err = np.asarray(error, dtype=float)
    err = np.where(np.isfinite(err), err, 0.0)
    optimistic = m + sign * optimism * err
    usable = np.isfinite(m) & np.isfinite(c)
    front_m = np.asarray(measured_metric, dtype=float)
    front_c = np.asarray(measured_cost, dtype=float)
    taken: list[int] = []
    out = []
    for _ in range(q):
        gains = hypervolume_gain(front_m, front_c, optimistic, c, reference, goal)
        gains[~usable] = -1.0
        gains[taken] = -1.0
        best = int(np.argmax(gains))
        if gains[best] <= 0.0:
            left = [i for i in np.flatnonzero(usable) if i not in taken]
            if not left:
                break
            best = max(left, key=lambda i: (sign * m[i], -c[i]))
        taken.append(best)
        out.append((pool[best], float(m[best]), float(gains[best])))
        front_m = np.append(front_m, m[best])
        front_c = np.append(front_c, c[best])
    return out


#: Of the cost range, how far beyond the most expensive candidate the hypervolume
#: reference lies: the costliest front point then still adds area.
REFERENCE_MARGIN = 0.1


def front_batch(
    space: SearchSpace,
    metric: Predictor,
    cost: Callable[[Sequence[Params]], np.ndarray],
    measured: Sequence[tuple[Params, float, float]],
    n: int,
    seed: int,
    goal: str = "maximize",
    admissible: Callable[[Params], bool] | None = None,
    taken: Sequence[Params] = (),
    pool_size: int = POOL_SIZE,
    pending: Sequence[tuple[Params, float, float]] = (),
) -> list[tuple[Params, float]]:
    """The next ``n`` trade-off proposals: (params, predicted metric).

    ``measured`` holds (params, metric, cost) of every measured point with a
    known cost; ``taken`` every point that may not be proposed again (measured,
    pending, failed). The pool is :func:`candidate_pool` around the measured
    front (seeded with ``seed``), less ``taken`` and what ``admissible``
    refuses; the choice is :func:`propose_front` with the hypervolume
    reference at the worst measured metric and ``REFERENCE_MARGIN`` of the
    cost range beyond the costliest candidate. ``pending`` holds (params,
    predicted metric, cost) of points proposed and not yet measured: they
    join the front at their predictions, as a batch's earlier slots do, so a
    proposal made while they train does not claim the area they will add
    (without them it was their neighbour).
    """
    if not measured or n < 1:
        return []
    m = np.array([row[1] for row in measured], dtype=float)
    c = np.array([row[2] for row in measured], dtype=float)
    front = [measured[i][0] for i in nondominated(m, c, goal)]
    blocked = {space.key(p) for p in taken} | {space.key(row[0]) for row in measured}
    pool = [
        p
        for p in candidate_pool(space, seed, front, pool_size)
        if space.key(p) not in blocked and (admissible is None or admissible(p))
    ]
    if not pool:
        return []
    pool_cost = np.asarray(cost(pool), dtype=float)
    predicted, error = metric(pool)
    every = np.concatenate([c, pool_cost[np.isfinite(pool_cost)]])
    low, high = float(every.min()), float(every.max())
    worst = float(m[np.argmin(GOAL_SIGN[goal] * m)])
    reference = (worst, high + REFERENCE_MARGIN * max(high - low, abs(high), 1e-12))
    out_m = np.array([row[1] for row in pending], dtype=float)
    out_c = np.array([row[2] for row in pending], dtype=float)
    known = np.isfinite(out_m) & np.isfinite(out_c)
    picks = propose_front(
        pool,
        predicted,
        error,
        pool_cost,
        np.concatenate([m, out_m[known]]),
        np.concatenate([c, out_c[known]]),
        n,
        reference,
        goal,
    )
    return [(params, value) for params, value, _ in picks]
