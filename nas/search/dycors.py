"""DYCORS's candidate rules for batch slots 2..q: coordinate subsets and an adapted radius.

pySOT's DYCORS (Regis & Shoemaker, Eng. Optim. 45(5), 2013) makes each
batch's candidates by perturbing the best point, and differs from a plain
Gaussian cloud in three ways that the default fill (perturb every
coordinate, halve the radius after ``max(4, d)`` points without
improvement) lacked:

* **few coordinates late**: each coordinate moves with probability
  ``min(20/d, 1) * (1 - ln k / ln B)`` (k points after the start, B the
  horizon), at least 1/d and at least one per candidate. Early candidates
  move everywhere; later ones along one or two axes, which is where a
  nearly separable loss (a network's stages) still improves;
* **a radius that grows and shrinks**: counted per batch, three improving
  batches in a row double it (up to the start radius), ``max(ceil(d/q),
  ceil(4/q))`` failing ones in a row halve it (down to 0.2 / 2^6);
* **candidates in proportion to d**, not a fixed count (pySOT: 100 d around its
  best point; the default strategy draws 200 d,
  :class:`~nas.search.strategies.DefaultStrategy`).

Everything is a function of the told values, their order and q, so a
search that restarts from its state file makes the same candidates.
"""

from __future__ import annotations

import math

import numpy as np

#: Perturbation radius (unit box) at the start and its floor (pySOT: 0.2 and 0.2 / 2^6).
RADIUS_MAX = 0.2
RADIUS_MIN = 0.2 * 0.5**6
#: Improving batches in a row that double the radius.
SUCCESS_TOLERANCE = 3
#: A batch improves when its best beats the best before it by this share of the told range.
IMPROVEMENT_RTOL = 1e-3


def perturbation_probability(n_told: int, d: int, horizon: int) -> float:
    """Probability that a coordinate moves: DYCORS's schedule over ``horizon`` points.

    ``n_told`` counts every told point; the first d+1 (what determines a
    spline) are the start and do not count towards the schedule.
    """
    k = max(1, n_told - d - 1)
    span = max(horizon - d - 1, k + 1, 2)
    return max(1.0 / d, min(20.0 / d, 1.0) * (1.0 - math.log(k) / math.log(span)))


def adapted_radius(values: np.ndarray, d: int, q: int) -> float:
    """The radius after replaying the told values batch by batch (higher is better).

    The first d+1 values are the start; the rest are cut into batches of q
    in the order told. The success and failure counters are pySOT's.
    """
    values = np.asarray(values, dtype=np.float64)
    start = min(len(values), d + 1)
    if start == 0:
        return RADIUS_MAX
    tol = IMPROVEMENT_RTOL * float(np.ptp(values))
    fail_tolerance = max(math.ceil(d / q), math.ceil(4 / q))
    best, status, radius = float(values[:start].max()), 0, RADIUS_MAX
    for lo in range(start, len(values), q):
        batch_best = float(values[lo : lo + q].max())
        if batch_best > best + tol:
            best, status = batch_best, max(1, status + 1)
        else:
            best, status = max(best, batch_best), min(-1, status - 1)
        if status <= -fail_tolerance:
            status, radius = 0, max(RADIUS_MIN, radius / 2.0)
        elif status >= SUCCESS_TOLERANCE:
            status, radius = 0, min(RADIUS_MAX, radius * 2.0)
    return radius


#: What becomes of a perturbation that leaves [0, 1]^d (:func:`subspace_perturb`).
BOUNDARIES = ("reflect", "clip")


def subspace_perturb(
    center: np.ndarray,
    sigma: float | np.ndarray,
    m: int,
    probability: float,
    rng: np.random.Generator,
    boundary: str = "reflect",
) -> np.ndarray:
    """``m`` perturbations of ``center`` moving each coordinate with ``probability`` (at least one).

    Gaussian steps of sd ``sigma`` (one for all, or one per perturbation, shape (m,)).
    A step beyond a face is mirrored back inside with ``boundary="reflect"``
    (pySOT's rule: the candidates around a centre on a face, where a spline's
    maximum often lies, still spread inwards), or put on the face with
    ``"clip"`` (the trade-off pool's rule: a front's cheap end lies on the box's
    faces, and every overshooting step lands there).
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    d = center.shape[0]
    mask = rng.random((m, d)) < probability
    mask[np.arange(m), rng.integers(0, d, m)] = True
    scale = np.reshape(sigma, (-1, 1))
    x = center + mask * rng.normal(0.0, scale, (m, d))
    if boundary == "clip":
        return np.clip(x, 0.0, 1.0)
    x = np.abs(x)  # reflect at 0
    return 1.0 - np.abs(1.0 - x % 2.0)  # reflect at 1 (period 2)
