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

With ``admissible`` (a mask of the legal points that may be proposed: a
cost bound, the GPU-memory limit) every stage maximises over the admissible
points only: the refinement follows the best admissible sample, the polish
starts from admissible samples and keeps an end only where it stays
admissible, and the climb moves to admissible neighbours. Without the mask
a bounded search's argmax is the unbounded one, which the proposal rules
refuse: the search then proposes the best of its random candidates instead
of the bounded maximum, and its predicted gain is of a point it may not
train.
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
#: Rounds of polishing the float coordinates of a climbed point and climbing again.
ALTERNATIONS = 3
#: How far (unit box) a coordinate is moved to see whether snapping keeps it there.
FREE_PROBE = 1e-3


Objective = Callable[[np.ndarray], np.ndarray]
Gradient = Callable[[np.ndarray], np.ndarray]
#: Legal unit points around a unit point (:meth:`nas.search.space.SearchSpace.lattice_neighbours`).
Neighbours = Callable[[np.ndarray], np.ndarray]
#: Which unit points (M, d) may be proposed, as a bool array (M,): judged at their legal snap.
Mask = Callable[[np.ndarray], np.ndarray]

#: Points judged first when looking for the best admissible one; each further
#: round judges twice as many (the mask may call a per-point rule, so it is asked
#: about the best candidates only, and most often the best is admissible).
MASK_FIRST = 8
#: Admissible samples among which the polish's separated starts are chosen.
START_POOL = 1024


def best_admissible(fx: np.ndarray, x: np.ndarray, admissible: Mask | None) -> int | None:
    """Index of the highest value whose point is admissible (None: no point is).

    Asks the mask about the best points first, :data:`MASK_FIRST` of them,
    then twice as many per round.
    """
    if admissible is None:  # the unbounded search's hot path: no sort
        return int(np.argmax(fx)) if fx.size else None
    found = best_admissible_samples(x, fx, admissible, 1)
    return int(found[0]) if found.size else None


def best_admissible_samples(
    x: np.ndarray, fx: np.ndarray, admissible: Mask | None, want: int
) -> np.ndarray:
    """Indices of the ``want`` best admissible samples (fewer if there are not as many),
    best first, judging the samples best first in rounds of doubling size."""
    order = np.argsort(-fx, kind="stable")
    if admissible is None:
        return order[:want]
    kept: list[np.ndarray] = []
    found, start, size = 0, 0, MASK_FIRST
    while start < order.size and found < want:
        chunk = order[start : start + size]
        kept.append(chunk[admissible(x[chunk])])
        found += kept[-1].size
        start, size = start + size, 2 * size
    return np.concatenate(kept)[:want] if kept else order[:0]


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
    admissible: Mask | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every point the hierarchical search evaluates, with its value.

    Level 0 is ``n_samples`` scrambled Halton points over [0, 1]^d plus
    ``extra_points``; level k samples the box of width ``shrink**k`` centred
    on the incumbent (the best ``admissible`` sample when a mask is given),
    clipped to [0, 1]^d. The search stops after two
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
    best = best_admissible(chunks_f[0], first, admissible)
    if best is None:  # nothing admissible in the screen: the refinement has no incumbent
        return first, chunks_f[0]
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
        i = best_admissible(fx, x, admissible)
        if i is not None and fx[i] > f_best + 4.0 * np.spacing(abs(f_best)):
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
    index = _screen_neighbours(x)
    if index.shape[1] < 2:
        return np.arange(len(x))[:limit]
    tops = np.flatnonzero(fx >= fx[index[:, 1:]].max(axis=1))
    return tops[np.argsort(-fx[tops], kind="stable")][:limit]


def _screen_neighbours(x: np.ndarray) -> np.ndarray:
    """Each screen point's ``BASIN_NEIGHBOURS_PER_DIM * d`` nearest screen points, itself
    first, as an (m, k) index array: the neighbourhood a basin top must beat."""
    from scipy.spatial import cKDTree  # deferred like scipy.stats: slow to import

    m, d = x.shape
    k = min(BASIN_NEIGHBOURS_PER_DIM * d + 1, m)
    if k < 2:
        return np.arange(m).reshape(m, 1)
    return cKDTree(x).query(x, k=k)[1]


def admissible_basin_tops(
    x: np.ndarray, fx: np.ndarray, admissible: Mask, limit: int = MAX_BASINS
) -> np.ndarray:
    """:func:`basin_tops` of the admissible screen points: each beats every admissible
    one of its nearest screen points, best first.

    A rule cuts basins, and its edge tops the cut ones. The points are taken
    best first and judged one by one with their better neighbours, so a slow
    rule is asked about the top of the screen only.
    """
    index = _screen_neighbours(x)
    judged: dict[int, bool] = {}

    def allowed(i: int) -> bool:
        if i not in judged:
            judged[i] = bool(admissible(x[i : i + 1])[0])
        return judged[i]

    tops: list[int] = []
    for i in np.argsort(-fx, kind="stable"):
        if not allowed(int(i)):
            continue
        better = [int(j) for j in index[i, 1:] if fx[j] > fx[i]]
        if not any(allowed(j) for j in better):
            tops.append(int(i))
            if len(tops) == limit:
                break
    return np.array(tops, dtype=int)


def _starts(
    x: np.ndarray, fx: np.ndarray, screen: int, n_starts: int, admissible: Mask | None = None
) -> np.ndarray:
    """The polish's starts: the best separated samples and the basin tops of the first
    ``screen``; with a mask, only admissible ones."""
    if admissible is None:
        best = separated_best(x, fx, n_starts)
        tops = basin_tops(x[:screen], fx[:screen])
    else:
        pool = best_admissible_samples(x, fx, admissible, START_POOL)
        best = pool[separated_best(x[pool], fx[pool], n_starts)]
        tops = admissible_basin_tops(x[:screen], fx[:screen], admissible)
    return x[np.unique(np.concatenate([best, tops]))]


def polish(
    f: Objective,
    gradient: Gradient,
    starts: np.ndarray,
    max_iter: int = 200,
    admissible: Mask | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bounded L-BFGS-B ascent of ``f`` in [0, 1]^d from each start; the end points and values.

    A polished point is never worse than its start (the start is kept when
    the optimiser stops early on a worse one). With a mask an end the mask
    refuses is dropped too, and the integer climb (:func:`climb`) walks on
    from the admissible start. Pulling such an end back to the bound along
    its path instead was measured and not kept: it sends proposals to the
    bound, where a spline rising with the cost is most optimistic
    (``benchmarks/results/constrained.md``).
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
        if admissible is not None and not admissible(end[None, :])[0]:
            continue  # the start stays: the climb walks on from it within the rule
        if float(f(end)) > float(f(x0)):
            out[row] = end
    return out, np.asarray(f(out), dtype=np.float64)


def climb(
    f: Objective, x: np.ndarray, neighbours: Neighbours, admissible: Mask | None = None
) -> tuple[np.ndarray, float] | None:
    """The best legal point reached from unit point ``x`` by moving to better lattice neighbours.

    The first step picks the best of the legal points around ``x`` (every
    rounding of its integer coordinates); each further step moves to the
    best neighbour of the current legal point while that is strictly better.
    With a mask only admissible points count; None when none is around ``x``.
    """
    candidates = neighbours(x)
    values = np.asarray(f(candidates), dtype=np.float64)
    i = best_admissible(values, candidates, admissible)
    if i is None:
        return None
    best, f_best = candidates[i], float(values[i])
    for _ in range(CLIMB_STEPS):
        candidates = neighbours(best)
        values = np.asarray(f(candidates), dtype=np.float64)
        i = best_admissible(values, candidates, admissible)
        if i is None or not values[i] > f_best + 4.0 * np.spacing(abs(f_best)):
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
    admissible: Mask | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three stages for a spline on a lattice of legal points.

    Returns the hierarchical samples with their values, and legal unit
    points: each polished maximum climbed to the best legal point of its
    integer neighbourhood, followed by that point's neighbours (the next
    candidates when it is already measured). Without ``neighbours`` the
    polished points are only snapped. With ``admissible`` every stage keeps
    to the admissible points (module docstring); the neighbours that follow
    a climbed point are not judged (the proposal rules do that).
    """
    x, fx = sample(
        spline, d, seed=seed, extra_points=support, n_samples=n_samples, admissible=admissible
    )
    starts = _starts(x, fx, len(support) + n_samples, n_starts, admissible)
    polished, _ = polish(spline, gradient, starts, admissible=admissible)
    if neighbours is None:
        return x, fx, snap(polished)
    legal = []
    for start in polished:
        climbed = climb(spline, start, neighbours, admissible)
        if climbed is not None:
            best = _alternate(spline, gradient, climbed, snap, neighbours, admissible)
            legal += [best[None, :], neighbours(best)]
    return x, fx, np.vstack(legal) if legal else np.empty((0, d))


def _alternate(
    f: Objective,
    gradient: Gradient,
    climbed: tuple[np.ndarray, float],
    snap: Callable[[np.ndarray], np.ndarray],
    neighbours: Neighbours,
    admissible: Mask | None,
) -> np.ndarray:
    """Polish a climbed point's free coordinates with its lattice ones held, and climb again.

    The climb moves the integer coordinates of a polished point and keeps its
    float ones, which were optimal for the real-valued integers the polish
    ended at, not for the integers the climb chose: on a space of floats and
    integers the legal maximum then sat short of the spline's (an independent
    check: 0.0999 reported where the spline reaches 0.042 at another value of
    the float, with the integers fixed). Up to :data:`ALTERNATIONS` rounds of a
    polish over the coordinates snapping leaves free, then a climb, while each
    gains; a point without free coordinates is returned at once.
    """
    best, f_best = climbed
    for _ in range(ALTERNATIONS):
        free = _free_coordinates(best, snap)
        if not free.any():
            break
        end = _polish_free(f, gradient, best, free)
        if admissible is not None and not admissible(end[None, :])[0]:
            break
        moved = climb(f, end, neighbours, admissible)
        if moved is None or not moved[1] > f_best + 4.0 * np.spacing(abs(f_best)):
            break
        best, f_best = moved
    return best


def _free_coordinates(x: np.ndarray, snap: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Which coordinates of legal unit point ``x`` snapping leaves where they are moved to.

    Float coordinates keep any value; integer ones and category indicators snap
    back. Judged by moving each coordinate a little towards the middle of the
    unit box (a coordinate of a dimension with a single level snaps back too).
    """
    step = np.where(x < 0.5, FREE_PROBE, -FREE_PROBE)
    probes = x[None, :] + np.diag(step)
    return np.abs(np.diag(snap(probes)) - np.diag(probes)) <= 1e-12


def _polish_free(f: Objective, gradient: Gradient, x: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Bounded L-BFGS-B ascent of ``f`` over the ``free`` coordinates of ``x``, the rest held."""
    from scipy.optimize import minimize  # deferred like scipy.stats: slow to import

    def full(z: np.ndarray) -> np.ndarray:
        point = x.copy()
        point[free] = z
        return point

    result = minimize(
        lambda z: -float(f(full(z))),
        x[free],
        jac=lambda z: -np.asarray(gradient(full(z)), dtype=np.float64)[free],
        method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * int(free.sum()),
        options={"maxiter": 200},
    )
    return full(np.clip(result.x, 0.0, 1.0))
