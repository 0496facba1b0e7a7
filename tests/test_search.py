"""Hierarchical maximisation and distinct, legal, feasible proposals."""

import numpy as np
import pytest

from nas.search.maximize import maximize
from nas.search.propose import SearchError, propose
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import PaperStrategy

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


# ------------------------------------------------------------- argmax vs a dense reference


def _bowl_spline(space: SearchSpace, target: list[float], n: int = 30) -> PolyharmonicSpline:
    """A spline through ``n`` Halton points of a tilted bowl topped at ``target`` (unit box)."""
    from scipy.stats import qmc

    x = space.snap_unit(qmc.Halton(space.d, seed=7).random(n))
    weights = np.linspace(1.0, 2.0, space.d)
    y = 80.0 - 10.0 * ((x - np.array(target)) ** 2 * weights).sum(axis=1) + 2.0 * x[:, 0] * x[:, 1]
    return PolyharmonicSpline(x, y)


def _dense_reference(space: SearchSpace, spline: PolyharmonicSpline) -> float:
    """Best legal value away from the data: every grid point (int spaces), else 2^15 Sobol + polish."""
    from scipy.optimize import minimize
    from scipy.stats import qmc

    if all(dim.type == "int" for dim in space.numeric):
        axes = [np.arange(dim.low, dim.high + 1) for dim in space.numeric]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, space.d)
        lows = np.array([dim.low for dim in space.numeric])
        highs = np.array([dim.high for dim in space.numeric])
        candidates = (grid - lows) / (highs - lows)
    else:
        x = qmc.Sobol(space.d, seed=1).random_base2(15)
        fx = spline(x)
        polished = [
            minimize(
                lambda z: -float(spline(z)),
                x0,
                jac=lambda z: -spline.gradient(z),
                bounds=[(0, 1)] * space.d,
            ).x
            for x0 in x[np.argsort(-fx)[:16]]
        ]
        candidates = np.vstack([x, np.clip(polished, 0, 1)])
    near = np.min(np.linalg.norm(candidates[:, None] - spline.points[None], axis=2), axis=1)
    return float(spline(candidates[near >= 1e-3]).max())


FLOATS = SearchSpace([Dim(f"x{k}", "float", 0.0, 1.0) for k in range(5)])
INTS = SearchSpace([Dim(f"k{k}", "int", 0, 12) for k in range(4)])


@pytest.mark.parametrize(
    ("space", "target"),
    [
        (FLOATS, [1.3, 1.2, -0.2, 0.4, 0.6]),  # on three bounds at once
        (FLOATS, [0.3, 0.7, 0.55, 0.2, 0.8]),  # interior
        (INTS, [1.3, -0.2, 1.25, 0.43]),  # corner region of an integer grid
        (INTS, [0.37, 0.61, 0.52, 0.29]),
    ],
    ids=["float-corner", "float-interior", "int-corner", "int-interior"],
)
def test_proposal_is_the_legal_argmax_of_the_spline(space: SearchSpace, target: list) -> None:
    spline = _bowl_spline(space, target)
    best = _dense_reference(space, spline)
    span = float(np.ptp(spline.values))
    for seed in range(10):
        (candidate,) = propose(space, {(): spline}, strategy=PaperStrategy(), seed=seed)
        assert (best - candidate.predicted) / span <= 1e-3, seed
