"""Under bounds the stop rule's checks look around and away from the best point within them.

The checks of condition (e) centred on the spline's best support point. Under
``[experiment.constraints]`` that point can break a bound (a design corner whose
measured cost is over it): the checks along its axes and in its neighbourhood then
looked for networks beyond the bound, which the bound refuses.
"""

from __future__ import annotations

import numpy as np

from nas.search.exploration import AlongAxes, AwayFromBest
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace

SPACE = SearchSpace([Dim("a", "int", low=0, high=20), Dim("b", "int", low=0, high=20)])


def within(params: dict) -> bool:
    """The bound: the sum of both coordinates at most 24 (the all-high corner is beyond)."""
    return params["a"] + params["b"] <= 24


def optimizer(eligible=None) -> SplineOptimizer:
    opt = SplineOptimizer(SPACE, SearchSettings(seed=3), eligible=eligible)
    for a, b in [(20, 20), (0, 0), (10, 10), (0, 20), (20, 0), (12, 12), (14, 8)]:
        opt.tell({"a": a, "b": b}, float(a + b))
    return opt


def test_checks_centre_on_the_best_point_within_the_bounds() -> None:
    opt = optimizer(within)
    best, _ = opt.best
    assert best == {"a": 12, "b": 12}  # (20, 20) measured 40 but breaks the bound
    strategies = opt._check_strategies(room=4)
    assert strategies and all(s.centre is not None for s in strategies)
    for strategy in strategies:
        assert np.allclose(strategy.centre, SPACE.to_unit(best))


def test_without_bounds_the_checks_centre_on_the_best_support_point() -> None:
    opt = optimizer()
    assert opt.best[0] == {"a": 20, "b": 20}
    assert all(s.centre is None for s in opt._check_strategies(room=4))


def test_the_axis_check_draws_on_the_lines_through_its_centre() -> None:
    opt = optimizer(within)
    (spline,) = opt._model()[1].values()
    centre = tuple(SPACE.to_unit({"a": 12, "b": 12}))
    ranking = AlongAxes(centre=centre).rank(
        spline, snap=SPACE.snap_unit, avoid=spline.points, rng=np.random.default_rng(0)
    )
    assert len(ranking.points)
    on_a_line = np.isclose(ranking.points, np.asarray(centre)).sum(axis=1) == 1
    assert on_a_line.all()


def test_the_away_check_ranks_first_what_lies_far_from_its_centre() -> None:
    opt = optimizer(within)
    (spline,) = opt._model()[1].values()
    centre = np.asarray(SPACE.to_unit({"a": 12, "b": 12}))
    ranking = AwayFromBest(centre=tuple(centre)).rank(
        spline, snap=SPACE.snap_unit, avoid=spline.points, rng=np.random.default_rng(0)
    )
    far = ranking.scores >= 0.0  # the far share scores in [0, 1], the near ones below
    distance = np.linalg.norm(ranking.points - centre, axis=1)
    assert far.any() and (~far).any()
    assert distance[far].min() >= distance[~far].max() - 1e-9
