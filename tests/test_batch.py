"""Batch fill: the default strategy spreads slots 2..q where the believer rule clusters them."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.batch import DiversePool
from nas.search.propose import Candidate, propose
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import DefaultStrategy, DiverseBatches, PaperStrategy

SPACE = SearchSpace([Dim("a", "int", 0, 20), Dim("b", "int", 0, 30), Dim("c", "int", 0, 10)])
PEAK = np.array([0.3, 0.7, 0.2])


class Believer:
    """The default strategy's ranking with the believer fill (it offers no batch candidates)."""

    def __init__(self) -> None:
        self.inner = DefaultStrategy()

    def rank(self, *args, **kwargs):
        return self.inner.rank(*args, **kwargs)


def bowl_spline(seed: int, n: int = 12) -> PolyharmonicSpline:
    x = SPACE.snap_unit(np.random.default_rng(seed).random((n, 3)))
    return PolyharmonicSpline(x, -((x - PEAK) ** 2).sum(axis=1))


def batch(seed: int, strategy=None, q: int = 4, **kwargs) -> list[Candidate]:
    return propose(
        SPACE, {(): bowl_spline(seed)}, q=q, strategy=strategy or DefaultStrategy(), seed=seed,
        **kwargs,
    )  # fmt: skip


def unit(candidates: list[Candidate]) -> np.ndarray:
    return SPACE.to_unit_many([c.params for c in candidates])


def min_pairwise(points: np.ndarray) -> float:
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    return float(d[np.triu_indices(len(points), 1)].min())


def test_only_strategies_with_batch_candidates_fill_diversely():
    assert isinstance(DefaultStrategy(), DiverseBatches)
    assert not isinstance(PaperStrategy(), DiverseBatches)
    assert not isinstance(Believer(), DiverseBatches)


@pytest.mark.parametrize("seed", range(2))
def test_slot_one_is_the_single_proposal(seed):
    (single,) = batch(seed, q=1)
    assert batch(seed)[0] == single


@pytest.mark.parametrize("seed", range(2))
def test_batch_is_distinct_admissible_and_new(seed):
    spline = bowl_spline(seed)
    pending = [{"a": 6, "b": 21, "c": 2}, {"a": 5, "b": 22, "c": 2}]
    out = batch(seed, avoid=pending, feasible=lambda p: p["c"] != 1, min_distance=0.04)
    keys = [SPACE.key(c.params) for c in out]
    assert len(out) == len(set(keys)) == 4
    existing = np.vstack([spline.points, SPACE.to_unit_many(pending)])
    assert not set(keys) & {SPACE.key(SPACE.from_unit(x)) for x in existing}
    assert all(c.params["c"] != 1 for c in out)
    points = unit(out)
    assert np.linalg.norm(points[:, None] - existing[None], axis=2).min() >= 0.04
    assert min_pairwise(points) >= 0.04
    np.testing.assert_allclose([c.predicted for c in out], spline(points))


def test_fill_is_deterministic_under_a_seed():
    assert batch(4) == batch(4)
    assert batch(4)[1:] != batch(5)[1:]


def test_fill_spreads_further_than_the_believer():
    """Believed slots land on lattice neighbours of each other; the merit fill keeps them apart."""
    merit = DefaultStrategy(batch_fill="merit")
    fill = [min_pairwise(unit(batch(seed, merit))) for seed in range(4)]
    believed = [min_pairwise(unit(batch(seed, Believer()))) for seed in range(4)]
    assert all(f >= b for f, b in zip(fill, believed, strict=True))
    assert np.mean(fill) > 1.3 * np.mean(believed)


def test_fill_draws_from_every_category():
    space = SearchSpace([Dim("a", "int", 0, 20), Dim("k", "categorical", choices=("x", "y"))])
    x = np.linspace(0.0, 1.0, 5)[:, None]
    splines = {
        ("x",): PolyharmonicSpline(x, -((x[:, 0] - 0.5) ** 2)),
        ("y",): PolyharmonicSpline(x, -((x[:, 0] - 0.5) ** 2) - 0.01),
    }
    out = propose(space, splines, q=6, strategy=DefaultStrategy(), seed=0)
    assert {c.category for c in out} == {("x",), ("y",)}
    assert len({space.key(c.params) for c in out}) == 6


def test_pool_merit_trades_value_for_distance():
    points = {(): np.array([[0.0], [0.1], [1.0]])}
    values = {(): np.array([1.0, 0.9, 0.0])}
    pool = DiversePool(points, values, {(): np.array([[0.5]])}, weights=(1.0, 0.0))
    np.testing.assert_array_equal(pool.rankings(1)[()].points[:, 0], [0.0, 0.1, 1.0])
    pool.take(np.array([0.0]), ())
    assert pool.rankings(2)[()].points[0, 0] == 1.0  # farthest from 0.0 and 0.5
    assert pool.rankings(3)[()].points[0, 0] == 0.0  # the cycle restarts: value only


def test_rejects_bad_batch_weights():
    with pytest.raises(ValueError, match="batch_weights"):
        DefaultStrategy(batch_weights=())
    with pytest.raises(ValueError, match="batch_weights"):
        DefaultStrategy(batch_weights=(1.5,))


class Stuck(DefaultStrategy):
    """Batch candidates that are all measured points: the pool has nothing admissible."""

    def batch_candidates(self, spline, first, *, snap, rng, q):
        return spline.points.copy()


def test_an_exhausted_pool_falls_back_to_the_strategy_ranking():
    out = batch(0, Stuck())
    assert len({SPACE.key(c.params) for c in out}) == 4
    assert out[0] == batch(0)[0]
    measured = {SPACE.key(SPACE.from_unit(x)) for x in bowl_spline(0).points}
    assert not {SPACE.key(c.params) for c in out} & measured


def test_fills_are_marked_and_believer_batches_have_none():
    assert [c.fill for c in batch(0)] == [False, True, True, True]
    assert not any(c.fill for c in batch(0, PaperStrategy()))


def test_every_proposal_of_a_diverse_batch_is_an_agreement_of_the_stop_rule():
    from nas.search.optimizer import SplineOptimizer
    from nas.search.settings import SearchSettings

    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=4, seed=0))
    for params in opt.ask(len(opt.initial_design())):
        opt.tell(params, -float(((SPACE.to_unit(params) - PEAK) ** 2).sum()))
    proposals = opt.suggest()
    assert [p.origin for p in proposals] == ["incremental", "fill", "fill", "fill"]
    for p in proposals:  # every prediction met exactly
        opt.tell(p.params, p.predicted)
    evidence = opt.stop_evidence()
    assert evidence.gaps == (0.0,) * min(evidence.k, 4)  # the fills count too
    assert evidence.k <= 4
    told = [r for r in opt.history if r.predicted is not None]
    assert [r.fill for r in told] == [False, True, True, True]
