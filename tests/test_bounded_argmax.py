"""The spline's maximum under a feasibility rule: argmax, proposals and the stop rule's gain.

A cost bound (``[experiment.constraints]``) or the GPU-memory limit reaches
the search as the optimizer's ``feasible`` predicate. On a metric that grows
with the cost the unbounded argmax lies beyond the bound; the search must
maximise over the points it may train, else its exploitation step proposes
the best of its random candidates and its predicted gain is of a network it
may not train.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.search.maximize import best_admissible, climb, legal_maxima
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline

SPACE = SearchSpace([Dim("width", "int", 8, 64), Dim("depth", "int", 1, 24)])
#: The cost bound: width * depth at most this (the unbounded optimum costs 64 * 24).
LIMIT = 400


def metric(width: float, depth: float) -> float:
    """Accuracy-like: rises with both, saturating; the bounded optimum is on the bound."""
    return 1.0 - np.exp(-width / 40.0) - 0.6 * np.exp(-depth / 8.0)


def within(params: dict) -> bool:
    return params["width"] * params["depth"] <= LIMIT


def measured_optimizer(feasible=within, n: int = 14, seed: int = 3) -> SplineOptimizer:
    """A search that measured ``n`` random feasible points (no design left to ask)."""
    opt = SplineOptimizer(SPACE, SearchSettings(seed=seed), feasible=feasible, design=[])
    rng = np.random.default_rng(seed)
    while opt.n_measured < n:
        params = {"width": int(rng.integers(8, 65)), "depth": int(rng.integers(1, 25))}
        if within(params) and SPACE.key(params) not in {SPACE.key(r.params) for r in opt.history}:
            opt.tell(params, metric(params["width"], params["depth"]))
    return opt


def dense_bounded_max(spline: PolyharmonicSpline) -> tuple[dict, float]:
    """The spline's best legal point within the bound, by enumerating the box."""
    grid = [
        {"width": w, "depth": d}
        for w, d in itertools.product(range(8, 65), range(1, 25))
        if w * d <= LIMIT
    ]
    values = spline(SPACE.to_unit_many(grid))
    i = int(np.argmax(values))
    return grid[i], float(values[i])


def test_best_admissible_takes_the_highest_value_the_mask_allows() -> None:
    fx = np.array([0.1, 0.9, 0.5, 0.7])
    x = np.arange(4.0)[:, None]
    assert best_admissible(fx, x, None) == 1
    assert best_admissible(fx, x, lambda rows: rows[:, 0] != 1.0) == 3
    assert best_admissible(fx, x, lambda rows: np.zeros(len(rows), bool)) is None


def test_a_climb_moves_only_to_admissible_neighbours() -> None:
    def f(x: np.ndarray) -> np.ndarray:
        return np.atleast_2d(x).sum(axis=1)  # rises towards the all-high corner

    def ok(x: np.ndarray) -> np.ndarray:
        return np.atleast_2d(x).sum(axis=1) <= 1.0 + 1e-12

    start = SPACE.snap_unit(np.array([[0.1, 0.1]]))[0]
    best, value = climb(f, start, SPACE.lattice_neighbours, ok)
    assert ok(best[None, :])[0]
    assert value == pytest.approx(1.0, abs=0.05)  # it walked up to the bound
    assert climb(f, start, SPACE.lattice_neighbours, lambda x: np.zeros(len(x), bool)) is None


def test_legal_maxima_under_a_mask_reach_the_bounded_maximum() -> None:
    opt = measured_optimizer()
    spline = opt.fit().splines[()]

    def ok(x: np.ndarray) -> np.ndarray:
        return np.array([within(SPACE.from_unit(row)) for row in SPACE.snap_unit(x)])

    _, _, legal = legal_maxima(
        spline,
        2,
        gradient=spline.gradient,
        support=spline.points,
        snap=SPACE.snap_unit,
        neighbours=SPACE.lattice_neighbours,
        seed=np.random.default_rng(0),
        admissible=ok,
    )
    values = spline(legal)
    best = best_admissible(values, legal, ok)
    _, reference = dense_bounded_max(spline)
    assert best is not None
    assert values[best] == pytest.approx(reference, abs=1e-9)


def test_the_fit_names_the_best_point_the_bound_allows() -> None:
    bounded = measured_optimizer().fit()
    argmax, value = dense_bounded_max(bounded.splines[()])
    assert within(bounded.argmax)
    assert bounded.argmax == argmax
    assert bounded.predicted_max == pytest.approx(value, abs=1e-9)
    unbounded = measured_optimizer(feasible=None).fit()
    assert not within(unbounded.argmax)  # the same data, no rule: beyond the bound
    assert unbounded.predicted_max > bounded.predicted_max


def test_an_exploiting_proposal_is_the_bounded_argmax() -> None:
    opt = measured_optimizer()
    argmax, value = dense_bounded_max(opt.fit().splines[()])
    assert value > max(r.value for r in opt.history)  # the fit promises a gain: exploit
    (proposal,) = opt.suggest(1)
    assert within(proposal.params)
    assert proposal.params == argmax
