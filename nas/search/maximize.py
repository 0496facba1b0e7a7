"""Hierarchical quasi-Monte-Carlo maximisation of the spline (DESIGN section 1)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_SAMPLES = 4096
DEFAULT_LEVELS = 30
DEFAULT_BUDGET = 2**17


Objective = Callable[[np.ndarray], np.ndarray]


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
    n_samples: int = DEFAULT_SAMPLES,
    shrink: float = 0.5,
    max_levels: int = DEFAULT_LEVELS,
    budget: int = DEFAULT_BUDGET,
) -> tuple[np.ndarray, float]:
    """Maximise a vectorised ``f: (M, d) -> (M,)`` over [0, 1]^d; see :func:`sample`.

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
    i = int(np.argmax(fx))
    return x[i].copy(), float(fx[i])


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
