"""One spline per category (``categories = "separate"``): categories compared on one scale.

Each category's spline ranks its own candidates, and the default strategy
scales its scores within a category (merits, an exploitation step's values
mapped to [0, 1]), so every category's head scored about 1: the search sent
120 of 210 proposals to a category 3 worse everywhere, and the axis check
landed on the lines through that category's best as often as on the best's.
"""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.exploration import CHECK_ORDER
from nas.search.optimizer import SplineOptimizer
from nas.search.propose import propose
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace
from nas.search.strategies import DefaultStrategy

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


@pytest.mark.parametrize("seed", range(3))
def test_the_search_proposes_in_the_category_that_predicts_best(seed: int) -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(seed=seed, categories="separate"))
    origins: list[tuple[str, str]] = []
    while len(origins) < 30:
        for p in opt.suggest(1):
            opt.tell(p.params, accuracy(p.params))
            origins.append((p.params["block"], p.origin))
    after_design = [block for block, origin in origins if origin != "initial"]
    assert len(after_design) >= 10 and set(after_design) == {"b"}


def test_heads_compare_by_predicted_value_whatever_their_scores() -> None:
    """Category "a" predicts 3 less everywhere: its head loses though its merit is as high."""
    opt = told(0)
    space, splines = opt._model()
    (head,) = propose(space, splines, strategy=DefaultStrategy(), seed=1)
    assert head.params["block"] == "b"
    assert head.predicted > float(np.max(splines[("a",)].values)) + 2.0
