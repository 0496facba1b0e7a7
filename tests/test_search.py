"""Hierarchical maximisation and distinct, legal, feasible proposals."""

import numpy as np
import pytest

from nas.search.maximize import maximize
from nas.search.propose import SearchError, propose
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline

SPACE = SearchSpace([Dim("a", "float", 0.0, 1.0), Dim("b", "float", 0.0, 1.0)])


def _bump(x: np.ndarray) -> np.ndarray:
    return -np.sum((x - np.array([0.3, 0.7])) ** 2, axis=1)


def _spline(n: int = 40) -> PolyharmonicSpline:
    x = np.random.default_rng(0).random((n, 2))
    return PolyharmonicSpline(x, _bump(x))


def test_maximize_finds_interior_and_corner_optima() -> None:
    x, fx = maximize(_bump, 2, seed=0)
    np.testing.assert_allclose(x, [0.3, 0.7], atol=1e-6)
    assert fx == pytest.approx(0.0, abs=1e-12)
    corner, _ = maximize(lambda z: z.sum(axis=1), 3, seed=0)
    np.testing.assert_allclose(corner, np.ones(3), atol=1e-6)


def test_maximize_is_deterministic_and_uses_extra_points() -> None:
    assert np.array_equal(maximize(_bump, 2, seed=5)[0], maximize(_bump, 2, seed=5)[0])
    spike = np.array([[0.123, 0.456]])
    x, _ = maximize(
        lambda z: np.where(np.all(z == spike, axis=1), 1.0, 0.0), 2, seed=0, extra_points=spike
    )
    np.testing.assert_array_equal(x, spike[0])


def test_maximize_respects_budget() -> None:
    calls = []

    def f(z: np.ndarray) -> np.ndarray:
        calls.append(len(z))
        return _bump(z)

    maximize(f, 2, seed=0, n_samples=100, budget=350)
    assert sum(calls) <= 350 and len(calls) == 3


def test_propose_is_the_argmax_away_from_support() -> None:
    (candidate,) = propose(SPACE, {(): _spline()})
    assert candidate.params["a"] == pytest.approx(0.3, abs=0.05)
    assert candidate.params["b"] == pytest.approx(0.7, abs=0.05)
    assert candidate.predicted == pytest.approx(_spline()(SPACE.to_unit(candidate.params)))


def test_batch_is_distinct_and_keeps_min_distance() -> None:
    pending = [{"a": 0.3, "b": 0.7}]
    batch = propose(SPACE, {(): _spline()}, q=4, avoid=pending, min_distance=0.05, seed=3)
    unit = SPACE.to_unit_many([c.params for c in batch])
    others = np.vstack([SPACE.to_unit_many(pending), _spline().points])
    assert np.min(np.linalg.norm(unit[:, None] - others[None], axis=2)) >= 0.05
    among = np.linalg.norm(unit[:, None] - unit[None], axis=2)
    assert np.min(among[np.triu_indices(4, 1)]) >= 0.05
    assert batch == propose(SPACE, {(): _spline()}, q=4, avoid=pending, min_distance=0.05, seed=3)


def test_snapped_collision_takes_next_distinct_candidate() -> None:
    space = SearchSpace([Dim("n", "int", 0, 4), Dim("m", "int", 0, 4)])
    x = space.to_unit_many([{"n": n, "m": m} for n, m in [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]])
    spline = PolyharmonicSpline(x, -np.sum((x - 0.5) ** 2, axis=1))
    (candidate,) = propose(space, {(): spline})
    assert candidate.params != {"n": 2, "m": 2}
    assert max(abs(candidate.params["n"] - 2), abs(candidate.params["m"] - 2)) == 1


def test_feasibility_predicate_excludes() -> None:
    batch = propose(SPACE, {(): _spline()}, q=3, feasible=lambda p: p["a"] > 0.6)
    assert all(c.params["a"] > 0.6 for c in batch)


def test_argmax_across_category_splines() -> None:
    space = SearchSpace(
        [Dim("a", "float", 0.0, 1.0), Dim("c", "categorical", choices=("lo", "hi"))]
    )
    x = np.array([[0.0], [0.5], [1.0]])
    splines = {
        ("lo",): PolyharmonicSpline(x, np.array([0.0, 1.0, 0.0])),
        ("hi",): PolyharmonicSpline(x, np.array([5.0, 6.0, 5.0])),
    }
    first, second = propose(space, splines, q=2)
    assert first.params["c"] == second.params["c"] == "hi"


def test_no_candidate_left_raises() -> None:
    space = SearchSpace([Dim("n", "int", 0, 1)])
    spline = PolyharmonicSpline(np.array([[0.0], [1.0]]), np.array([0.0, 1.0]))
    with pytest.raises(SearchError, match="no feasible candidate.*taken"):
        propose(space, {(): spline})
