"""Trade-off fronts of (metric, cost): non-dominated sets and the 2-d hypervolume.

A point dominates another when its metric is at least as good (higher for
``goal="maximize"``, lower for ``"minimize"``), its cost is at most as high,
and one of the two strictly so. Costs are always minimised. Everything here
works on arrays and is used for measured points and for spline predictions
alike; which points are which is the caller's business.

The hypervolume of a front is the area it dominates up to a reference point
(a metric no better, a cost no lower than every point of interest), the usual
single number for how good a trade-off curve is [1]_.

References
----------
.. [1] Zitzler, E. and Thiele, L., 1999. Multiobjective evolutionary
   algorithms: a comparative case study and the strength Pareto approach.
   IEEE Trans. Evolutionary Computation 3(4), 257-271.
"""

from __future__ import annotations

import numpy as np

#: Sign that turns a metric into one to maximise, by goal.
GOAL_SIGN = {"maximize": 1.0, "minimize": -1.0}


def _oriented(metric: np.ndarray, cost: np.ndarray, goal: str) -> tuple[np.ndarray, np.ndarray]:
    """(gain, cost) as float arrays with the gain to maximise; checks shapes and the goal."""
    if goal not in GOAL_SIGN:
        raise ValueError(f"goal must be one of {sorted(GOAL_SIGN)}, got {goal!r}")
    m = np.asarray(metric, dtype=float).reshape(-1)
    c = np.asarray(cost, dtype=float).reshape(-1)
    if m.shape != c.shape:
        raise ValueError(f"metric and cost must have the same length, got {m.size} and {c.size}")
    return GOAL_SIGN[goal] * m, c


def nondominated(metric: np.ndarray, cost: np.ndarray, goal: str = "maximize") -> np.ndarray:
    """Indices of the non-dominated points, ordered by increasing cost.

    Points with a NaN metric or cost take no part. Of exact twins (same metric
    and cost) only the first is kept: the front is a set of trade-offs, and a
    twin offers none that the other does not.

    Parameters
    ----------
    metric, cost : (N,) array_like
        Metric (oriented by ``goal``) and cost (minimised) of each point.
    goal : {"maximize", "minimize"}
        Direction of the metric.
    """
    gain, c = _oriented(metric, cost, goal)
    valid = np.flatnonzero(np.isfinite(gain) & np.isfinite(c))
    # cheapest first; among equal costs the best gain first; then the earlier index
    order = valid[np.lexsort((valid, -gain[valid], c[valid]))]
    keep = []
    best = -np.inf
    for i in order:
        if gain[i] > best:
            keep.append(int(i))
            best = gain[i]
    return np.array(keep, dtype=int)


def hypervolume(
    metric: np.ndarray,
    cost: np.ndarray,
    reference: tuple[float, float],
    goal: str = "maximize",
) -> float:
    """Area dominated by the points and bounded by ``reference`` = (metric, cost).

    Points no better than the reference in either objective add nothing.
    Exact, O(N log N): a sweep over the front in order of cost.
    """
    gain, c = _oriented(metric, cost, goal)
    ref_gain = GOAL_SIGN[goal] * float(reference[0])
    ref_cost = float(reference[1])
    inside = np.isfinite(gain) & np.isfinite(c) & (gain > ref_gain) & (c < ref_cost)
    gain, c = gain[inside], c[inside]
    front = nondominated(gain, c, "maximize")
    area = 0.0
    for k, i in enumerate(front):  # costs rise and gains rise along the front
        next_cost = c[front[k + 1]] if k + 1 < len(front) else ref_cost
        area += (next_cost - c[i]) * (gain[i] - ref_gain)
    return float(area)


def hypervolume_gain(
    front_metric: np.ndarray,
    front_cost: np.ndarray,
    metric: np.ndarray,
    cost: np.ndarray,
    reference: tuple[float, float],
    goal: str = "maximize",
) -> np.ndarray:
    """How much the hypervolume grows when each candidate alone joins the front.

    Vectorised over the candidates ``(metric, cost)``: the gain of a candidate
    is the area of the region it dominates that the front does not, bounded
    by ``reference``. Zero for a candidate the front dominates.
    """
    f_gain, f_cost = _oriented(front_metric, front_cost, goal)
    gain, c = _oriented(metric, cost, goal)
    ref_gain = GOAL_SIGN[goal] * float(reference[0])
    ref_cost = float(reference[1])
    keep = nondominated(f_gain, f_cost, "maximize")
    f_gain, f_cost = f_gain[keep], f_cost[keep]
    f_gain = np.maximum(f_gain, ref_gain)
    # staircase of the front: between breakpoints the attained gain is a step function of cost
    breaks = np.concatenate([f_cost, [ref_cost]])
    out = np.zeros(gain.shape)
    ok = np.isfinite(gain) & np.isfinite(c) & (gain > ref_gain) & (c < ref_cost)
    for j in np.flatnonzero(ok):
        area = 0.0
        start = c[j]
        # below the cheapest front point nothing is attained: the floor is the reference
        segments = np.concatenate([[start], breaks[breaks > start]])
        for lo, hi in zip(segments[:-1], segments[1:], strict=True):
            attained = f_gain[f_cost <= lo].max(initial=ref_gain)
            area += (hi - lo) * max(gain[j] - attained, 0.0)
        out[j] = area
    return out


def reference_point(
    metric: np.ndarray, cost: np.ndarray, goal: str = "maximize"
) -> tuple[float, float]:
    """A reference for :func:`hypervolume`: the worst metric and the highest cost seen.

    Points at the reference add no area; callers that compare searches fix
    one reference for all of them.
    """
    gain, c = _oriented(metric, cost, goal)
    ok = np.isfinite(gain) & np.isfinite(c)
    if not ok.any():
        raise ValueError("no finite (metric, cost) pair to take a reference from")
    return float(GOAL_SIGN[goal] * gain[ok].min()), float(c[ok].max())
