"""Maximising the spline: hierarchical quasi-Monte Carlo, local polish, lattice search.

The hierarchical search of DESIGN section 1 (:func:`sample`) shrinks its box
around one incumbent per level, so it settles in one basin and, where the
maximum sits on several bounds at once, often in the wrong corner of it.
Two further stages make the result the argmax to the accuracy the proposals
need: the best few well-separated candidates are polished by bounded
L-BFGS-B with the spline's analytic gradient (:func:`polish`), and the
polished points are moved to the best legal point of their integer
neighbourhood (:func:`climb`). The polish starts from the best samples and
from the best screen point of every distinct basin of the Halton screen
(:func:`basin_tops`): the maximum may sit in a basin the refinement never
looked at.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_SAMPLES = 4096
DEFAULT_LEVELS = 30
DEFAULT_BUDGET = 2**17
#: Candidates polished locally, chosen best first and at least ``START_SEPARATION``
#: (unit box, times sqrt(d)) apart so that several basins are tried.
DEFAULT_STARTS = 8
START_SEPARATION = 0.05
#: Most basins of the Halton screen polished (their best points, best first).
MAX_BASINS = 24
#: Screen points compared with each other to call one a basin's best: this many times d.
BASIN_NEIGHBOURS_PER_DIM = 2
#: Steps of the integer-neighbourhood search (each moves to a strictly better point).
CLIMB_STEPS = 64


Objective = Callable[[np.ndarray], np.ndarray]
Gradient = Callable[[np.ndarray], np.ndarray]
#: Legal unit points around a unit point (:meth:`nas.search.space.SearchSpace.lattice_neighbours`).
Neighbours = Callable[[np.ndarray], np.ndarray]


def sample(
    f: Objective,
    d: int,
    *,
    seed: int | np.random.Generator,
    extra_points: np.ndarray | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    shrink: float = 0.5,
    max_levels: int = DEFAULT_LEVELS,
    budget: int = DEFAULT_BUDGET,
) -> tuple[np.ndarray, np.ndarray]:
    """Every point the hierarchical search evaluates, with its value.

    Level 0 is ``n_samples`` scrambled Halton points over [0, 1]^d plus
    ``extra_points``; level k samples the box of width ``shrink**k`` centred
    on the incumbent, clipped to [0, 1]^d. The search stops after two
    consecutive levels without improvement beyond floating-point accuracy
    (one miss can be sampling luck in a box still much wider than the
    distance to the optimum), after ``max_levels`` levels, or when the next
    level would exceed ``budget`` evaluations.

    Returns
    -------
    points : (M, d) ndarray
    values : (M,) ndarray
        ``f(points)``; the argmax is the search result.
    """
    _check_search_args(d, n_samples, shrink, max_levels, budget)
    from scipy.stats import qmc  # deferred: scipy.stats costs a login node ~1 s to import

    engine = qmc.Halton(d, scramble=True, seed=seed)
    first = engine.random(n_samples)
    if extra_points is not None and len(extra_points):
        first = np.vstack([np.asarray(extra_points, dtype=np.float64).reshape(-1, d), first])
    chunks_x, chunks_f = [first], [np.asarray(f(first), dtype=np.float64)]
    best = int(np.argmax(chunks_f[0]))
    x_best, f_best = first[best], chunks_f[0][best]
    used = first.shape[0]
    misses = 0
    for level in range(1, max_levels + 1):
        if used + n_samples > budget:
            break
        half = 0.5 * shrink**level
        lo = np.clip(x_best - half, 0.0, 1.0)
        hi = np.clip(x_best + half, 0.0, 1.0)
        x = lo + engine.random(n_samples) * (hi - lo)
        fx = np.asarray(f(x), dtype=np.float64)
        used += n_samples
        chunks_x.append(x)
        chunks_f.append(fx)
        i = int(np.argmax(fx))
        if fx[i] > f_best + 4.0 * np.spacing(abs(f_best)):
            x_best, f_best, misses = x[i], fx[i], 0
        else:
            misses += 1
            if misses == 2:
                break
    return np.vstack(chunks_x), np.concatenate(chunks_f)


def maximize(
    f: Objective,
    d: int,
    *,
    seed: int | np.random.Generator,
    extra_points: np.ndarray | None = None,
    gradient: Gradient | None = None,
    n_starts: int = DEFAULT_STARTS,
    n_samples: int = DEFAULT_SAMPLES,
    shrink: float = 0.5,
    max_levels: int = DEFAULT_LEVELS,
    budget: int = DEFAULT_BUDGET,
) -> tuple[np.ndarray, float]:
    """Maximise a vectorised ``f: (M, d) -> (M,)`` over [0, 1]^d.

    :func:`sample`, then, given the ``gradient``, :func:`polish` from the
    ``n_starts`` best separated samples.

    Returns
    -------
    x_best : (d,) ndarray
    f_best : float
    """
    x, fx = sample(
        f,
        d,
        seed=seed,
        extra_points=extra_points,
        n_samples=n_samples,
        shrink=shrink,
        max_levels=max_levels,
        budget=budget,
    )
    if gradient is not None and n_starts > 0:
        screen = n_samples + (0 if extra_points is None else len(extra_points))
        px, pfx = polish(f, gradient, _starts(x, fx, screen, n_starts))
        x, fx = np.vstack([x, px]), np.concatenate([fx, pfx])
    i = int(np.argmax(fx))
    return x[i].copy(), float(fx[i])


def separated_best(x: np.ndarray, fx: np.ndarray, k: int) -> np.ndarray:
    """Indices of up to ``k`` best points, each ``START_SEPARATION * sqrt(d)`` from the others.

    The refinement levels pile thousands of samples around one incumbent;
    spreading the starts tries the next-best basins too.
    """
    radius2 = START_SEPARATION**2 * x.shape[1]
    order = np.argsort(-fx, kind="stable")
    ranked = x[order]
    chosen: list[int] = []
    while len(chosen) < k and len(order):
        chosen.append(int(order[0]))
        diff = ranked - ranked[0]
        far = np.einsum("ij,ij->i", diff, diff) >= radius2
        order, ranked = order[far], ranked[far]  # the piles around a start drop out at once
    return np.array(chosen, dtype=int)


def basin_tops(x: np.ndarray, fx: np.ndarray, limit: int = MAX_BASINS) -> np.ndarray:
    """Indices of up to ``limit`` screen points that beat their nearest screen neighbours, best first.

    Each is the best point of one basin as the screen sees it: none of its
    ``BASIN_NEIGHBOURS_PER_DIM * d`` nearest points is higher. A polish from
    each finds the maxima of the basins the refinement levels, which follow
    one incumbent, leave alone.
    """
    from scipy.spatial import cKDTree  # deferred like scipy.stats: slow to import

    m, d = x.shape
    k = min(BASIN_NEIGHBOURS_PER_DIM * d + 1, m)
    if k < 2:
        return np.arange(m)[:limit]
    _, index = cKDTree(x).query(x, k=k)
    tops = np.flatnonzero(fx >= fx[index[:, 1:]].max(axis=1))
    return tops[np.argsort(-fx[tops], kind="stable")][:limit]


def _starts(x: np.ndarray, fx: np.ndarray, screen: int, n_starts: int) -> np.ndarray:
    """The polish's starts: the best separated samples and the basin tops of the first ``screen``."""
    best = separated_best(x, fx, n_starts)
    tops = basin_tops(x[:screen], fx[:screen])
    return x[np.unique(np.concatenate([best, tops]))]


def polish(
    f: Objective, gradient: Gradient, starts: np.ndarray, max_iter: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Bounded L-BFGS-B ascent of ``f`` in [0, 1]^d from each start; the end points and values.

    A polished point is never worse than its start (the start is kept when
    the optimiser stops early on a worse one).
    """
    from scipy.optimize import minimize  # deferred like scipy.stats: slow to import

    d = starts.shape[1]
    out = np.array(starts, dtype=np.float64, copy=True)
    for row, x0 in enumerate(starts):
        result = minimize(
            lambda x: -float(f(x)),
            x0,
            jac=lambda x: -np.asarray(gradient(x), dtype=np.float64),
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * d,
            options={"maxiter": max_iter},
        )
        end = np.clip(result.x, 0.0, 1.0)
        if float(f(end)) > float(f(x0)):
            out[row] = end
    return out, np.asarray(f(out), dtype=np.float64)


def climb(f: Objective, x: np.ndarray, neighbours: Neighbours) -> tuple[np.ndarray, float]:
    """The best legal point reached from unit point ``x`` by moving to better lattice neighbours.

    The first step picks the best of the legal points around ``x`` (every
    rounding of its integer coordinates); each further step moves to the
    best neighbour of the current legal point while that is strictly better.
    """
    candidates = neighbours(x)
    values = np.asarray(f(candidates), dtype=np.float64)
    i = int(np.argmax(values))
    best, f_best = candidates[i], float(values[i])
    for _ in range(CLIMB_STEPS):
        candidates = neighbours(best)
        values = np.asarray(f(candidates), dtype=np.float64)
        i = int(np.argmax(values))
        if not values[i] > f_best + 4.0 * np.spacing(abs(f_best)):
            break
        best, f_best = candidates[i], float(values[i])
    return best, f_best


def _check_search_args(d: int, n_samples: int, shrink: float, max_levels: int, budget: int) -> None:
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"shrink must be in (0, 1), got {shrink}")
    if max_levels < 0:
        raise ValueError(f"max_levels must be >= 0, got {max_levels}")
    if budget < n_samples:
        raise ValueError(f"budget = {budget} must be at least n_samples = {n_samples}")


def legal_maxima(
    spline: Objective,
    d: int,
    *,
    gradient: Gradient,
    support: np.ndarray,
    snap: Callable[[np.ndarray], np.ndarray],
    neighbours: Neighbours | None,
    seed: int | np.random.Generator,
    n_samples: int = DEFAULT_SAMPLES,
    n_starts: int = DEFAULT_STARTS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three stages for a spline on a lattice of legal points.

    Returns the hierarchical samples with their values, and legal unit
    points: each polished maximum climbed to the best legal point of its
    integer neighbourhood, followed by that point's neighbours (the next
    candidates when it is already measured). Without ``neighbours`` the
    polished points are only snapped.
    """
    x, fx = sample(spline, d, seed=seed, extra_points=support, n_samples=n_samples)
    polished, _ = polish(spline, gradient, _starts(x, fx, len(support) + n_samples, n_starts))
    if neighbours is None:
        return x, fx, snap(polished)
    legal = []
    for start in polished:
        best, _ = climb(spline, start, neighbours)
        legal += [best[None, :], neighbours(best)]
    return x, fx, np.vstack(legal)
