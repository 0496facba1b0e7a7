"""Initial designs: Algorithm 1's 2d+3 corners, or a small seeded space-filling design.

The corner design (:meth:`nas.search.space.SearchSpace.initial_design`)
spends 2d+3 trainings before the first model-based proposal: 19 at d = 8.
A space-filling design of n = d+2 points already determines the spline (d+1
affinely independent points plus one) and leaves the rest of the budget to
the model; space-filling starts of that size are what pySOT (symmetric Latin
hypercube, 2(d+1)) and Gutmann/Regis-Shoemaker RBF methods use.

The design here is a scrambled Sobol sequence (Owen scrambling, scipy's
``qmc.Sobol``) snapped to the legal grid, with the all-high corner always
included: NAS boxes (widths, depths) usually hold their best networks at
large values. Several scramblings are drawn and the one whose closest pair
of points is farthest apart is kept (maximin over scramblings, as in
Morris & Mitchell's criterion). Everything depends on ``seed`` only.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import qmc

from nas.search.settings import DESIGNS, minimum_design_points
from nas.search.space import Params, SearchSpace, indicator_count

#: Scramblings compared by the maximin criterion.
SCRAMBLINGS = 16


def default_size(space: SearchSpace, shared: bool = False) -> int:
    """One more point than a spline with a linear tail needs: d+2 per category, or
    d+2 plus one per non-first categorical choice for the shared model."""
    return space.d + 2 + (indicator_count(space) if shared else 0)


def initial_design(
    space: SearchSpace,
    kind: str = "corners",
    n: int | None = None,
    seed: int = 0,
    shared: bool = False,
) -> list[Params]:
    """The initial design of ``kind``, in proposal order.

    With ``shared`` (one model for all categories, :mod:`nas.search.categories`)
    the categories share one design: row i of the numeric design takes choice
    i mod K of each categorical dimension with K choices, so every choice is
    measured and a 2-way category does not double the design. Otherwise
    (a spline per category, Algorithm 1) every category gets the whole design.

    Raises
    ------
    ValueError
        Unknown ``kind``, or ``n`` too small to determine a spline (< d+1).
    """
    if kind not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {kind!r}")
    if kind == "corners" and not shared:
        return space.initial_design()
    if kind == "corners":
        unit = space.corner_unit()
    else:
        n = default_size(space, shared) if n is None else n
        if n < minimum_design_points(space):
            raise ValueError(
                f"a space-filling design needs at least d+1 = {minimum_design_points(space)} "
                f"points, got {n}"
            )
        unit = space_filling_unit(space, n, seed)
    rows = (
        [(row, round_robin(space, i)) for i, row in enumerate(unit)]
        if shared
        else [(row, category) for category in space.categories() for row in unit]
    )
    if shared and kind == "corners":  # the centre in every category: the offsets where it matters
        rows[3:3] = [(unit[2], category) for category in space.categories()]
    out: dict[tuple, Params] = {}
    for row, category in rows:
        params = space.from_unit(row, category)
        out.setdefault(space.key(params), params)
    return list(out.values())


def round_robin(space: SearchSpace, i: int) -> tuple:
    """Choice ``i mod K`` of each categorical dimension (K its number of choices)."""
    return tuple(dim.choices[i % len(dim.choices)] for dim in space.categorical)


def space_filling_unit(space: SearchSpace, n: int, seed: int) -> np.ndarray:
    """``n`` distinct legal unit points (fewer only on a tiny grid), the all-high corner first."""
    best, best_score = None, -1.0
    for draw in range(SCRAMBLINGS):
        design = _snapped_sobol(space, n, np.random.default_rng([seed, draw]))
        score = _min_distance(design)
        if score > best_score:
            best, best_score = design, score
    return best


def _snapped_sobol(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    corner = space.snap_unit(np.ones((1, space.d)))
    sampler = qmc.Sobol(space.d, scramble=True, seed=rng)
    with warnings.catch_warnings():  # n need not be a power of 2 for a start design
        warnings.simplefilter("ignore", UserWarning)
        raw = sampler.random(4 * n)
    rows = np.vstack([corner, space.snap_unit(raw)])
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)][:n]


def _min_distance(x: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    diff = x[:, None, :] - x[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    return float(dist[np.triu_indices(len(x), 1)].min())
