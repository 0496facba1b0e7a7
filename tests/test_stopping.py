"""The stop rule, the space-filling design and the noise options of the spline search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.config import ConfigError, parse_experiment
from nas.search.design import initial_design
from nas.search.optimizer import SearchStalled, SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace
from nas.search.stopping import decide, stall_length

SPACE = SearchSpace([Dim("a", "int", 1, 9), Dim("b", "int", 1, 9)])


def test_stall_counts_measurements_since_the_best_rose_by_the_tolerance() -> None:
    assert stall_length([1.0, 2.0, 2.05, 2.1, 1.0], tolerance=0.5) == 3
    assert stall_length([1.0, 2.0], tolerance=0.5) == 0


def test_one_agreement_stops_algorithm_1_but_not_the_default_rule() -> None:
    values = [float(v) for v in range(10)] + [9.0] * 3
    one_match = [(9.0, 9.0)]
    assert decide("paper", values, one_match, d=2, tolerance=0.1).stop
    evidence = decide("default", values, one_match, d=2, tolerance=0.1)
    assert not evidence.stop and "1 of the last 3 proposals" in evidence.reason


def test_default_rule_needs_k_agreements_a_stall_and_no_promised_gain() -> None:
    values = [10.0] + [5.0] * 12
    matches = [(5.0, 5.05)] * 3
    assert decide("default", values, matches, d=2, tolerance=0.1).stop
    assert not decide("default", values[:6], matches, d=2, tolerance=0.1).stop
    gain = decide("default", values, matches, d=2, tolerance=0.1, gain=lambda: 0.5)
    assert not gain.stop and "promises 0.5" in gain.reason
    off = [(5.0, 5.05), (5.0, 6.0), (5.0, 5.0)]
    assert not decide("default", values, off, d=2, tolerance=0.1).stop


def test_default_rule_needs_the_best_s_neighbours_predicted_when_left_out() -> None:
    values = [10.0] + [5.0] * 12
    matches = [(5.0, 5.05)] * 3
    asked = []

    def local(error: float):
        return lambda: asked.append(error) or error

    assert decide("default", values, matches, d=2, tolerance=0.1, local_error=local(0.05)).stop
    off = decide("default", values, matches, d=2, tolerance=0.1, local_error=local(0.3))
    assert not off.stop and off.local_error == 0.3
    assert "a neighbour of the best is predicted 0.3 off when left out" in off.reason
    unknown = decide("default", values, matches, d=2, tolerance=0.1, local_error=local(math.inf))
    assert not unknown.stop and "no fit of the measured points" in unknown.reason
    older = decide("default", values, matches, d=2, tolerance=0.1, local_error=local(math.nan))
    assert not older.stop and "stored fit predates the neighbour check" in older.reason
    asked.clear()
    early = decide("default", values[:6], matches, d=2, tolerance=0.1, local_error=local(0.0))
    assert not early.stop and asked == [] and early.local_error is None  # no fit before (a), (b)


def test_the_neighbour_error_is_the_refit_without_each_of_the_d_plus_1_nearest_points() -> None:
    grid = [(a, b) for a in range(1, 10, 2) for b in range(1, 10, 3)]
    # scales fixed: a refit without a point could otherwise choose another warp
    settings = SearchSettings(seed=0, tolerance=0.1, warping="off")
    opt = SplineOptimizer(SPACE, settings)
    for a, b in grid:
        opt.tell({"a": a, "b": b}, float(np.sin(a) + np.cos(b / 2) + 0.1 * a))
    told = opt.history
    unit = opt.space.to_unit(opt.best[0])
    nearest = sorted(told, key=lambda r: float(np.linalg.norm(opt.space.to_unit(r.params) - unit)))
    errors = []
    for left_out in nearest[: SPACE.d + 1]:
        rest = SplineOptimizer(SPACE, settings)
        for record in told:
            if record is not left_out:
                rest.tell(record.params, record.value)
        errors.append(abs(left_out.value - rest.predict(left_out.params)))
    assert opt.local_loo_error() == pytest.approx(max(errors), rel=1e-6)
    assert opt.fit().local_loo == opt.local_loo_error()


def test_noise_raises_the_tolerance_to_twice_its_sd() -> None:
    values = [10.0] + [5.0] * 12
    gaps = [(5.0, 5.3)] * 3
    assert not decide("default", values, gaps, d=2, tolerance=0.1).stop
    evidence = decide("default", values, gaps, d=2, tolerance=0.1, noise_sd=0.2)
    assert evidence.stop and evidence.tolerance == pytest.approx(0.4)


def test_space_filling_design_has_d_plus_2_points_with_the_all_high_corner() -> None:
    space = SearchSpace([Dim(f"x{i}", "int", 0, 20) for i in range(6)])
    design = initial_design(space, "space-filling", seed=3)
    assert len(design) == 8 and len({space.key(p) for p in design}) == 8
    assert {"x0": 20, "x1": 20, "x2": 20, "x3": 20, "x4": 20, "x5": 20} in design
    assert design == initial_design(space, "space-filling", seed=3)
    assert design != initial_design(space, "space-filling", seed=4)
    x = space.to_unit_many(design)
    assert np.linalg.matrix_rank(x - x.mean(axis=0)) == 6  # determines a spline
    assert len(initial_design(space, "space-filling", n=12)) == 12
    with pytest.raises(ValueError, match="at least d\\+1 = 7"):
        initial_design(space, "space-filling", n=6)


def test_optimizer_asks_for_the_configured_design_first() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(design="space-filling", design_points=5, seed=1))
    assert opt.ask(5) == initial_design(SPACE, "space-filling", 5, 1)
    default = SplineOptimizer(SPACE, SearchSettings(seed=1)).initial_design()
    assert default == initial_design(SPACE, "space-filling", seed=1)
    assert SplineOptimizer(SPACE, SearchSettings(strategy="paper")).initial_design() == (
        SPACE.initial_design()
    )


def test_auto_noise_smooths_and_best_is_the_best_smoothed_point() -> None:
    rng = np.random.default_rng(0)
    opt = SplineOptimizer(SPACE, SearchSettings(noise="auto"))
    points = [{"a": a, "b": b} for a in range(1, 10, 2) for b in range(1, 10, 2)]
    for p in points:
        opt.tell(p, -((p["a"] - 5) ** 2 + (p["b"] - 5) ** 2) / 10 + rng.normal(0, 0.3))
    opt.tell({"a": 1, "b": 2}, 1.0)  # one lucky run far from the optimum (true value -2.5)
    assert opt.raw_best[0] == {"a": 1, "b": 2}
    assert opt.best[0] != {"a": 1, "b": 2}
    assert opt.fit().smoothing > 0 and opt.noise_sd() > 0
    known = SplineOptimizer(SPACE, SearchSettings(noise=0.3))
    for record in opt.history:
        known.tell(record.params, record.value)
    assert known.stop_evidence().tolerance >= 0.6


def test_config_keys_are_validated_with_file_table_and_key() -> None:
    base = '[experiment]\nname = "t"\n{}\n[[space]]\nname = "x"\ntype = "int"\nlow = 0\nhigh = 4\n'
    exp = parse_experiment(base.format('design = "space-filling"\nnoise = "auto"'), "t.toml")
    assert exp.experiment.design == "space-filling" and exp.experiment.noise == "auto"
    assert parse_experiment(base.format("noise = 0.2"), "t.toml").experiment.noise == 0.2
    for line, key in [
        ('design = "grid"', "design"),
        ('noise = "high"', "noise"),
        ("noise = -1", "noise"),
        ('stop = "never"', "stop"),
        ("design_points = 1", "design_points"),
    ]:
        with pytest.raises(ConfigError, match=f"t.toml.*experiment.*{key}"):
            parse_experiment(base.format(line), "t.toml")


def test_a_design_that_cannot_be_fitted_is_topped_up_with_space_filling_points() -> None:
    space = SearchSpace([Dim("a", "int", 0, 10), Dim("b", "int", 0, 10), Dim("c", "int", 0, 10)])
    opt = SplineOptimizer(space, SearchSettings(design="space-filling", seed=3))
    design = opt.ask(len(opt.initial_design()))
    with pytest.warns(RuntimeWarning):
        for i, params in enumerate(design):  # two of the d+2 points fail: d remain
            opt.tell(params, math.nan if i < 2 else float(sum(params.values())))
    assert opt.fit() is None
    more = opt.suggest(2)
    assert [p.origin for p in more] == ["initial", "initial"]
    keys = {space.key(p) for p in design}
    assert all(space.key(p.params) not in keys for p in more)
    again = SplineOptimizer(space, SearchSettings(design="space-filling", seed=3))
    with pytest.warns(RuntimeWarning):
        for record in opt.history:
            again.tell(record.params, record.value)
    assert again.suggest(2) == more  # a state rebuilt from the same points asks the same
    for p in more:
        opt.tell(p.params, float(sum(p.params.values())))
    assert opt.fit() is not None and opt.suggest(1)[0].origin == "incremental"


def test_a_design_that_mostly_failed_is_not_topped_up() -> None:
    space = SearchSpace([Dim("a", "int", 0, 10), Dim("b", "int", 0, 10), Dim("c", "int", 0, 10)])
    opt = SplineOptimizer(space, SearchSettings(design="space-filling", seed=3))
    design = opt.ask(len(opt.initial_design()))
    with pytest.warns(RuntimeWarning):
        for i, params in enumerate(design):  # 3 of 5 fail: more would likely fail too
            opt.tell(params, math.nan if i < 3 else float(sum(params.values())))
    with pytest.raises(SearchStalled, match="3 of 5 told points failed"):
        opt.suggest(2)  # nothing pending either: an error that says why, not [] for ever
