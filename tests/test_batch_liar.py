"""The liar fill: each batch slot is the argmax of the spline refitted to the slots before it,
taken as measured a little worse than predicted."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.optimizer import SplineOptimizer
from nas.search.propose import propose
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import BATCH_LIE, DefaultStrategy

SPACE = SearchSpace([Dim("a", "int", 0, 60), Dim("b", "int", 0, 60)])
#: Three hills; the first two nearly level: their tops differ by less than the lie.
CENTRES = np.array([[0.19, 0.31], [0.69, 0.31], [0.44, 0.81]])
HEIGHTS = np.array([1.0, 0.985, 0.8])
WIDTH = 0.01  # squared
#: Every legal point of SPACE in the unit box.
LATTICE = np.array(np.meshgrid(np.arange(61), np.arange(61))).reshape(2, -1).T / 60.0


def hills(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x)
    squared = ((x[:, None, :] - CENTRES[None]) ** 2).sum(axis=2)
    return (HEIGHTS * np.exp(-squared / WIDTH)).sum(axis=1)


def hills_spline() -> PolyharmonicSpline:
    ticks = np.linspace(0.0, 1.0, 9)  # a step of 0.125: every hill top is off the grid
    x = SPACE.snap_unit(np.array(np.meshgrid(ticks, ticks)).reshape(2, -1).T)
    return PolyharmonicSpline(x, hills(x))


def batch(fill: str, q: int = 3, seed: int = 0):
    strategy = DefaultStrategy(batch_fill=fill)
    return propose(SPACE, {(): hills_spline()}, q=q, strategy=strategy, seed=seed)


def unit(candidates) -> np.ndarray:
    return SPACE.to_unit_many([c.params for c in candidates])


def second_hill_top(spline: PolyharmonicSpline) -> float:
    """The spline's largest value over the legal points of the second hill's half (exhaustive)."""
    return float(spline(LATTICE[LATTICE[:, 0] > 0.5]).max())


def test_a_slot_joins_the_refit_at_its_prediction_less_the_lie():
    values = np.array([2.0, 5.0, 12.0])
    assert DefaultStrategy(batch_fill="liar").fantasy_value(7.0, values) == 7.0 - BATCH_LIE * 10
    assert DefaultStrategy(batch_fill="believer").fantasy_value(7.0, values) == 7.0


@pytest.mark.parametrize("seed", range(3))
def test_the_lie_sends_slot_two_to_the_top_of_the_nearly_level_second_hill(seed):
    spline = hills_spline()
    liar, believer = batch("liar", seed=seed), batch("believer", seed=seed)
    assert liar[0] == believer[0] == batch("liar", q=1, seed=seed)[0]
    first, second = unit(liar[:2])
    assert np.linalg.norm(first - CENTRES[0]) < 0.04
    assert spline(second[None])[0] == pytest.approx(second_hill_top(spline), abs=1e-12)
    # believed at its prediction, slot 1 keeps the first summit the best: slot 2 explores
    assert believer[1].predicted < second_hill_top(spline) - 1e-3
    assert not any(c.fill for c in liar)  # the search's own next steps, not spread-out fills
    np.testing.assert_allclose([c.predicted for c in liar], spline(unit(liar)))


def measure(p) -> float:
    return float(hills(SPACE.to_unit(p))[0])


@pytest.mark.parametrize("seed", range(2))
def test_a_search_rebuilt_from_its_told_values_makes_the_same_batch(seed):
    settings = SearchSettings(batch_size=4, seed=seed, batch_fill="liar")
    opt = SplineOptimizer(SPACE, settings)
    for _ in range(4):
        for p in opt.ask():
            opt.tell(p, measure(p))
    batch_now = opt.suggest()
    again = SplineOptimizer(SPACE, settings)
    for r in opt.history:  # as the controller rebuilds it from the state file
        again.tell(r.params, r.value, predicted=r.predicted, fill=r.fill, check=r.check)
    assert again.suggest() == batch_now
    assert len({SPACE.key(p.params) for p in batch_now}) == 4
