"""Proposals keep away from trainings that failed.

A failed point was never proposed again, but nothing else changed: the argmax
moved one lattice step, and in a search whose trainings fail beyond one width
(out of memory, a walltime a larger network cannot meet) five of five proposals
after the first failure failed too. The ranking splines now see a failure as the
worst measurement, and each failed point refuses the candidates within half its
distance to the nearest measured point (the trade-off search ranks on the front,
not on those splines).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from cost_support import accuracy, resnet_experiment

from nas.config import parse_experiment
from nas.control.policy import Study
from nas.record.state import PointStatus
from nas.record.store import StateStore
from nas.search.failures import failure_zones
from nas.search.optimizer import SplineOptimizer
from nas.search.space import Dim, SearchSpace

#: Trainings fail for networks wider than this in g1 (the widest are the most accurate).
FAILS_ABOVE = 28


def run_campaign(
    tmp_path: Path, proposals: int, settings: str = "", fails_above: int = FAILS_ABOVE
) -> list[bool]:
    """The corner design measured, then ``proposals`` single proposals; whether each failed
    (every network wider than ``fails_above`` in g1 fails)."""
    experiment = parse_experiment(resnet_experiment(settings=settings))
    failed = []
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        state = store.state
        study = Study(state, experiment)
        points = study.initial_batch()
        for _ in range(proposals + 1):
            for point in points:
                if point.params["g1"] > fails_above:
                    state.set_status(point.id, PointStatus.FAILED, "the job ended without a result")
                else:
                    state.record(point.id, accuracy(point.params))
                if point.origin != "initial":
                    failed.append(point.params["g1"] > fails_above)
            if len(failed) >= proposals:
                return failed
            points = study.propose(1)
    return failed


@pytest.mark.parametrize("settings", ["", 'strategy = "paper"'])
def test_after_a_failure_the_search_leaves_the_failing_region(tmp_path, settings) -> None:
    failed = run_campaign(tmp_path, proposals=6, settings=settings)
    assert sum(failed) <= 2, failed  # all six failed before
    assert not all(failed[-3:])


def test_the_trade_off_search_keeps_away_from_failed_points(tmp_path) -> None:
    # its front wants the widest networks: ranked on the exact spline, eight of eight failed
    failed = run_campaign(tmp_path, proposals=8, settings='tradeoff = "gmacs"', fails_above=20)
    assert sum(failed) <= 2, failed


def space_2d(categorical: bool = False) -> SearchSpace:
    dims = [Dim("a", "float", low=0.0, high=1.0), Dim("b", "float", low=0.0, high=1.0)]
    if categorical:
        dims.append(Dim("c", "categorical", choices=("x", "y")))
    return SearchSpace(dims)


def test_a_failed_point_refuses_half_its_distance_to_the_nearest_measurement() -> None:
    space = space_2d()
    zones = failure_zones(
        space, [{"a": 1.0, "b": 1.0}], [{"a": 0.6, "b": 1.0}, {"a": 0.0, "b": 0.0}]
    )
    assert zones is not None and zones.count == 1
    assert not zones.allows({"a": 0.81, "b": 1.0})  # 0.19 from the failure, radius 0.2
    assert zones.allows({"a": 0.79, "b": 1.0})
    assert zones.allows({"a": 1.0, "b": 0.79})
    assert "away from 1 failed point(s)" in zones.text()


def test_a_failure_refuses_nothing_in_another_category_or_without_measurements() -> None:
    space = space_2d(categorical=True)
    zones = failure_zones(space, [{"a": 1.0, "b": 1.0, "c": "x"}], [{"a": 0.0, "b": 0.0, "c": "x"}])
    assert zones is not None
    assert not zones.allows({"a": 0.9, "b": 0.9, "c": "x"})
    assert zones.allows({"a": 0.9, "b": 0.9, "c": "y"})
    assert (
        failure_zones(space, [{"a": 1.0, "b": 1.0, "c": "y"}], [{"a": 0.0, "b": 0.0, "c": "x"}])
        is None
    )


def test_the_campaigns_own_points_are_not_judged(tmp_path) -> None:
    experiment = parse_experiment(resnet_experiment())
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        state = store.state
        study = Study(state, experiment)
        for point in study.initial_batch():
            if point.params == {"g1": 32, "g2": 8}:
                state.set_status(point.id, PointStatus.FAILED, "out of walltime")
            else:
                state.record(point.id, accuracy(point.params))
        inside = {"g1": 30, "g2": 10}  # within the failed corner's ball, added by hand
        state.add_point(inside, "manual", state.next_batch())
        admissible = study.admissible()
        assert study.failure_zones() is not None and not study.failure_zones().allows(inside)
        assert admissible(inside)
        assert not admissible({"g1": 31, "g2": 9})


def test_cancelled_points_make_no_zone_and_failed_ones_are_named(tmp_path) -> None:
    experiment = parse_experiment(resnet_experiment())
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        state = store.state
        study = Study(state, experiment)
        later = None
        for point in study.initial_batch():
            if point.params == {"g1": 32, "g2": 64}:
                state.set_status(point.id, PointStatus.CANCELLED, "a person withdrew it")
            elif point.params == {"g1": 32, "g2": 8}:
                later = point
            else:
                state.record(point.id, accuracy(point.params))
        assert later is not None and study.failure_zones() is None
        state.set_status(later.id, PointStatus.FAILED, "out of walltime")
        assert study.failure_zones() is not None
        assert "away from 1 failed point(s)" in study.rules_text()
        assert not study.admissible()({"g1": 31, "g2": 9})
        assert study.admissible()({"g1": 31, "g2": 63})  # near the cancelled corner


def test_failures_change_only_the_ranking_not_the_predictions() -> None:
    space = space_2d()
    optimizer = SplineOptimizer(space)
    for a, b in [(0, 0), (1, 0), (0, 1), (0.5, 0.5), (0.2, 0.8)]:
        optimizer.tell({"a": a, "b": b}, a + b)
    before = optimizer.predict({"a": 0.9, "b": 0.9})
    with pytest.warns(RuntimeWarning):
        optimizer.tell({"a": 1.0, "b": 1.0}, math.nan)
    assert optimizer.predict({"a": 0.9, "b": 0.9}) == pytest.approx(before)
    ranking = optimizer._search_model()
    assert ranking is not None  # a spline through the failure at the worst value ranks proposals
    (spline,) = ranking.values()
    assert spline(np.array([[1.0, 1.0]]))[0] == pytest.approx(0.0, abs=1e-6)


def test_a_ranking_outside_the_optimizer_sees_failures_at_the_worst_value() -> None:
    space = space_2d()
    optimizer = SplineOptimizer(space)
    for a, b in [(0, 0), (1, 0), (0, 1), (0.5, 0.5), (0.2, 0.8)]:
        optimizer.tell({"a": a, "b": b}, a + b)
    near = [{"a": 0.95, "b": 0.95}, {"a": 0.1, "b": 0.1}]
    exact = optimizer.predict_interval(near)[0]
    assert np.allclose(optimizer.predict_interval_seeing_failures(near)[0], exact)  # nothing failed
    with pytest.warns(RuntimeWarning):
        optimizer.tell({"a": 1.0, "b": 1.0}, math.nan)
    seen = optimizer.predict_interval_seeing_failures(near)[0]
    assert seen[0] < exact[0] - 0.5  # next to the failure: pulled towards the worst value, 0
    assert seen[1] == pytest.approx(exact[1], abs=0.15)  # far from it: about as before
    assert np.allclose(optimizer.predict_interval(near)[0], exact)


def test_a_withdrawn_point_is_never_proposed_but_no_sign_of_its_region() -> None:
    space = space_2d()
    optimizer = SplineOptimizer(space)
    for a, b in [(0, 0), (1, 0), (0, 1), (0.5, 0.5), (0.2, 0.8)]:
        optimizer.tell({"a": a, "b": b}, a + b)
    with pytest.warns(RuntimeWarning):
        optimizer.tell({"a": 1.0, "b": 1.0}, math.nan, withdrawn=True)
    assert optimizer._failed_as_worst() == []
    near = [{"a": 0.95, "b": 0.95}]
    assert np.allclose(
        optimizer.predict_interval_seeing_failures(near)[0], optimizer.predict_interval(near)[0]
    )
    assert all(p.params != {"a": 1.0, "b": 1.0} for p in optimizer.suggest(3))


def test_a_ranking_fit_that_fails_with_the_failures_ranks_without_them(monkeypatch) -> None:
    from nas.search.spline import SplineError

    space = space_2d()
    optimizer = SplineOptimizer(space)
    for a, b in [(0, 0), (1, 0), (0, 1), (0.5, 0.5), (0.2, 0.8)]:
        optimizer.tell({"a": a, "b": b}, a + b)
    with pytest.warns(RuntimeWarning):
        optimizer.tell({"a": 1.0, "b": 1.0}, math.nan)
    fit = SplineOptimizer._fit_ranking

    def singular_with_failures(self, capping, failed):
        if failed:
            raise SplineError("singular")
        return fit(self, capping, failed)

    monkeypatch.setattr(SplineOptimizer, "_fit_ranking", singular_with_failures)
    assert optimizer._ranking_model(0.0) is None  # the exact splines rank
    assert optimizer._ranking_model(0.25) is not None  # capped, without the failures
    assert len(optimizer.suggest(1)) == 1
