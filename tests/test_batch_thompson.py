"""The Thompson fill: slots 2..q each the best DYCORS candidate of a draw from the posterior."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.optimizer import SplineOptimizer
from nas.search.propose import propose
from nas.search.settings import SearchSettings, SettingError
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import DefaultStrategy

SPACE = SearchSpace([Dim(f"x{i}", "int", 0, 40) for i in range(5)])
PEAK = np.array([0.3, 0.7, 0.2, 0.55, 0.8])


def ridge_spline(seed: int, n: int = 14) -> PolyharmonicSpline:
    x = SPACE.snap_unit(np.random.default_rng(seed).random((n, SPACE.d)))
    return PolyharmonicSpline(x, -((x - PEAK) ** 2).sum(axis=1) + 0.3 * np.sin(9 * x[:, 0]))


def fills(seed: int, strategy: DefaultStrategy, **kwargs) -> list[tuple]:
    out = propose(
        SPACE, {(): ridge_spline(seed)}, q=4, strategy=strategy, seed=seed, **kwargs
    )  # fmt: skip
    return [SPACE.key(c.params) for c in out]


def test_the_default_search_fills_by_thompson_and_paper_refuses_it():
    assert SearchSettings().fill == "thompson"
    assert SplineOptimizer(SPACE).strategy.batch_fill == "thompson"
    assert SearchSettings(strategy="paper").fill == "believer"
    settings = SearchSettings(batch_fill="dycors")
    assert SplineOptimizer(SPACE, settings).strategy.batch_fill == "dycors"
    for fill in ("thompson", "dycors"):
        with pytest.raises(SettingError, match="batch_fill"):
            SearchSettings(strategy="paper", batch_fill=fill)
    with pytest.raises(ValueError, match="thompson_spread"):
        DefaultStrategy(batch_fill="thompson", thompson_spread=-0.1)


@pytest.mark.parametrize("seed", range(3))
def test_without_spread_the_draws_are_the_spline_and_the_fill_ranks_by_value(seed):
    """Spread 0 makes every draw the spline itself: the slots are the pool's best-valued
    admissible candidates, as the merit fill gives with all its weight on the value."""
    still = DefaultStrategy(batch_fill="thompson", thompson_spread=0.0)
    by_value = DefaultStrategy(batch_fill="dycors", batch_weights=(1.0,))
    assert fills(seed, still) == fills(seed, by_value)


@pytest.mark.parametrize("seed", range(3))
def test_draws_spread_the_fills_reproducibly_and_within_the_rules(seed):
    strategy = DefaultStrategy(batch_fill="thompson")
    pending = [SPACE.from_unit(PEAK)]
    kwargs = {"avoid": pending, "min_distance": 0.05}
    out = propose(SPACE, {(): ridge_spline(seed)}, q=4, strategy=strategy, seed=seed, **kwargs)
    assert [SPACE.key(c.params) for c in out] == fills(seed, strategy, **kwargs)
    (single,) = propose(
        SPACE, {(): ridge_spline(seed)}, q=1, strategy=strategy, seed=seed, **kwargs
    )
    assert out[0] == single
    assert [c.fill for c in out] == [False, True, True, True]
    points = SPACE.to_unit_many([c.params for c in out])
    existing = np.vstack([ridge_spline(seed).points, SPACE.to_unit_many(pending), points])
    gaps = np.linalg.norm(points[:, None] - existing[None], axis=2)
    gaps[np.arange(4), len(existing) - 4 + np.arange(4)] = np.inf  # a point and itself
    assert gaps.min() >= 0.05
    still = DefaultStrategy(batch_fill="thompson", thompson_spread=0.0)
    assert fills(seed, strategy)[1:] != fills(seed, still)[1:]


def test_an_optimizer_batch_of_four_climbs_a_bowl():
    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=4, seed=3, batch_fill="thompson"))
    loss = lambda p: float(((SPACE.to_unit(p) - PEAK) ** 2).sum())  # noqa: E731
    for p in opt.initial_design():
        opt.tell(p, -loss(p))
    origins = []
    for _ in range(6):
        batch = opt.suggest()
        assert len(batch) == 4
        origins += [c.origin for c in batch]
        for c in batch:
            opt.tell(c.params, -loss(c.params))
    assert origins.count("fill") >= 6, origins
    assert max(record.value for record in opt.history) > -0.01
