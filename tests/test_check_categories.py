"""Checks around the best stay in the best's category when each category has its own spline.

With ``categories = "separate"`` each category's spline ranks a check around
its own best, and merits are scaled per category, so the axis check used to
land on the lines through a worse category's best as often as on the best's.
"""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.exploration import CHECK_ORDER
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace

SPACE = SearchSpace(
    [
        Dim("block", "categorical", choices=("a", "b")),
        Dim("x", "int", 0, 10),
        Dim("y", "int", 0, 10),
        Dim("flag", "int", 0, 1),
    ]
)


def accuracy(p: dict) -> float:
    """Block "b" is 3 better everywhere; the optimum has x = 6, y = 3, flag = 1."""
    offset = 0.0 if p["block"] == "b" else -3.0
    return offset - ((p["x"] - 6) / 10) ** 2 - ((p["y"] - 3) / 10) ** 2 + 0.2 * p["flag"]


def told(seed: int, n: int = 24) -> SplineOptimizer:
    opt = SplineOptimizer(SPACE, SearchSettings(seed=seed, categories="separate"))
    rng = np.random.default_rng(seed)
    seen: set[tuple] = set()
    while len(seen) < n:
        p = {
            "block": ("a", "b")[rng.integers(2)],
            "x": int(rng.integers(11)),
            "y": int(rng.integers(11)),
            "flag": int(rng.integers(2)),
        }
        if tuple(p.values()) not in seen:
            seen.add(tuple(p.values()))
            opt.tell(p, accuracy(p))
    return opt


@pytest.mark.parametrize("seed", range(6))
def test_checks_around_the_best_lie_in_its_category(seed: int) -> None:
    opt = told(seed)
    space, splines = opt._model()
    assert len(splines) == 2  # one spline per category
    best = opt.best[0]
    _, axes, neighbourhood = CHECK_ORDER
    along = opt._check(space, splines, [], axes)
    assert along is not None
    moved = [k for k in best if along.params[k] != best[k]]
    assert len(moved) == 1 and moved != ["block"]  # one coordinate of the best's own lines
    near = opt._check(space, splines, [], neighbourhood)
    assert near is not None and near.params["block"] == best["block"]
