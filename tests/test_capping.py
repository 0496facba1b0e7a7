"""Capping: the spline that ranks proposals sees the poor values as their lower quartile."""

import dataclasses

import numpy as np
import pytest

from nas.config import ConfigError, load_experiment
from nas.search.optimizer import SplineOptimizer, capped_values
from nas.search.settings import MEASURED_CAPPING, SearchSettings, SettingError
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import DefaultStrategy

SPACE = SearchSpace(
    [Dim("w", "int", 16, 256), Dim("n", "int", 1, 12), Dim("lr", "float", 0.0, 1.0)]
)


def _accuracy(p: dict) -> float:
    """A narrow network learns nothing: a cliff far below the smooth region near the optimum."""
    w, n, lr = p["w"] / 256, p["n"] / 12, p["lr"]
    smooth = 80.0 - 40 * (w - 0.6) ** 2 - 30 * (n - 0.4) ** 2 - 20 * (lr - 0.3) ** 2
    return smooth - (45.0 if p["w"] < 48 else 0.0)


def _told(settings: SearchSettings, extra: int = 6) -> SplineOptimizer:
    """The design, a cliff point and ``extra`` proposals told."""
    opt = SplineOptimizer(SPACE, settings)
    for params in [*opt.initial_design(), {"w": 20, "n": 2, "lr": 0.9}]:
        opt.tell(params, _accuracy(params))
    for _ in range(extra):
        for proposal in opt.suggest():
            opt.tell(proposal.params, _accuracy(proposal.params))
    return opt


def test_values_below_the_quantile_are_raised_to_it_and_the_rest_kept() -> None:
    values = np.array([5.0, -40.0, 3.0, 1.0, 2.0, 4.0, -7.0, 0.0])
    out = capped_values(values, 0.25)
    floor = np.quantile(values, 0.25)
    assert np.array_equal(out, np.maximum(values, floor))
    assert out.min() == floor > values.min()
    assert np.array_equal(out[values >= floor], values[values >= floor])
    assert np.array_equal(capped_values(values, 0.0), values)


def test_capping_is_off_unless_asked_for_and_a_quantile_below_one() -> None:
    assert SearchSettings().capping == SearchSettings(strategy="paper").capping == 0.0
    assert SearchSettings(capping=MEASURED_CAPPING).capping == 0.25
    for bad in (1.0, -0.1):
        with pytest.raises(SettingError, match="capping"):
            SearchSettings(capping=bad)


def test_a_bad_capping_in_the_file_names_the_key(tmp_path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(
        '[experiment]\nname = "x"\ncapping = 1.5\n'
        '[[space]]\nname = "w"\ntype = "int"\nlow = 1\nhigh = 4\n'
        '[model]\nfamily = "resnet"\n'
    )
    with pytest.raises(ConfigError, match=r"exp\.toml.*capping.*less than 1"):
        load_experiment(path)


def test_proposals_are_ranked_on_the_capped_spline_and_predicted_by_the_exact_one() -> None:
    opt = _told(SearchSettings(seed=3, capping=MEASURED_CAPPING))
    exact = opt.fit().splines[()]
    (capped,) = opt._search_model().values()
    values = exact.values
    assert np.allclose(exact(exact.points), values)  # the model itself interpolates the data
    assert np.allclose(capped(capped.points), capped_values(values, MEASURED_CAPPING))
    assert not np.allclose(capped(capped.points), values)  # the cliff was capped
    (proposal,) = opt.suggest()
    assert proposal.predicted == pytest.approx(opt.predict(proposal.params), abs=1e-9)


def test_capping_changes_where_the_search_goes_and_zero_turns_it_off() -> None:
    def first_proposals(settings: SearchSettings) -> list:
        opt = _told(settings, extra=0)
        return [p.params for p in opt.suggest(3)]

    capped = first_proposals(SearchSettings(seed=3, capping=MEASURED_CAPPING))
    plain = first_proposals(SearchSettings(seed=3, capping=0.0))
    assert capped != plain
    opt = _told(SearchSettings(seed=3, capping=0.0), extra=0)
    assert opt._search_model() is None  # the exact splines rank


def test_a_batch_heads_on_the_capped_spline_and_fills_and_predicts_on_the_exact_one() -> None:
    settings = SearchSettings(seed=3, batch_size=3, capping=MEASURED_CAPPING)
    opt = _told(settings, extra=0)
    batch = opt.suggest()
    (single,) = _told(SearchSettings(seed=3, capping=MEASURED_CAPPING), extra=0).suggest()
    assert batch[0].params == single.params  # slot 1 is the single proposal, capped or not
    assert [p.origin for p in batch] == ["incremental", "fill", "fill"]
    for proposal in batch:
        assert proposal.predicted == pytest.approx(opt.predict(proposal.params), abs=1e-9)
    plain = _told(dataclasses.replace(settings, capping=0.0), extra=0).suggest()
    assert plain[0].params != batch[0].params  # the head moved: the capping ranked it


def test_the_gain_worth_exploiting_is_a_share_of_the_measured_range_not_the_capped_one() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((12, 3)) * 0.5 + 0.5  # the peak at 0.2 lies outside the measured corner
    values = -((x - 0.2) ** 2).sum(axis=1)
    spline = PolyharmonicSpline(x, values)
    head = DefaultStrategy().rank(spline, **_rank_args()).points[:1]
    gain = float(spline(head)[0]) - values.max()
    strategy = DefaultStrategy(gain_rtol=min(0.5, 0.5 * gain / float(np.ptp(values))))
    assert strategy.rank(spline, **_rank_args()).scores.min() >= 0.0  # exploits
    cliff = values.min() - 10.0 * (gain + np.ptp(values))  # a measurement the capping raised
    told = np.append(values[:-1], cliff)
    explores = strategy.rank(spline, **_rank_args(), told=told)
    assert explores.scores.min() <= -1.0  # the same gain is too small a share of this range


def _rank_args() -> dict:
    return {"snap": SPACE.snap_unit, "avoid": np.empty((0, 3)), "rng": np.random.default_rng(0)}
