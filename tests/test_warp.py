"""Input warping: positive dimensions go to the spline on a log scale where the data say so."""

import json

import numpy as np
import pytest
from experiment_support import experiment_toml, init_state, run

from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings, SettingError
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.warp import Warp, WarpedSpline, choose, fit_warped, identity_warp

LOW, HIGH = np.array([16.0, 1.0, 1.0]), np.array([1024.0, 100.0, 2.0])
#: Dimensions 0 and 1 may be warped (positive bounds); 2 stands for one that may not.
CANDIDATES = Warp(np.array([True, True, False]), LOW, HIGH)


def _width_effect(u: np.ndarray) -> np.ndarray:
    """A metric that acts by the log of dimension 0 and linearly in dimensions 1 and 2."""
    v0 = LOW[0] + u[:, 0] * (HIGH[0] - LOW[0])
    return 3.0 * np.log(v0) - 0.02 * np.log(v0) ** 2 + 2.0 * u[:, 1] - u[:, 2]


def _points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3))


def test_the_log_map_keeps_the_unit_interval_and_its_derivative_is_exact() -> None:
    warp = Warp(np.array([True, False, False]), LOW, HIGH)
    u = np.array([[0.0, 0.3, 0.7], [1.0, 0.3, 0.7], [0.25, 0.9, 0.1]])
    w = warp.forward(u)
    assert w[0, 0] == pytest.approx(0.0) and w[1, 0] == pytest.approx(1.0)
    assert np.array_equal(w[:, 1:], u[:, 1:])
    v = LOW[0] + 0.25 * (HIGH[0] - LOW[0])
    assert w[2, 0] == pytest.approx(np.log(v / LOW[0]) / np.log(HIGH[0] / LOW[0]))
    h = 1e-6
    numeric = (warp.forward(u + h) - warp.forward(u - h)) / (2 * h)
    assert np.allclose(warp.derivative(u[2:]), numeric[2:], rtol=1e-6)
    assert identity_warp(3).identity and not warp.identity
    assert np.array_equal(identity_warp(3).forward(u), u)


def test_the_dimension_that_acts_by_its_log_is_warped_and_the_others_kept() -> None:
    x = _points(40)
    chosen = choose(x, _width_effect(x), CANDIDATES).warp
    assert chosen.logarithmic.tolist() == [True, False, False]


def test_a_metric_linear_in_every_dimension_is_not_warped() -> None:
    x = _points(40)
    y = 2.0 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + 0.3 * x[:, 0] * x[:, 1]
    assert choose(x, y, CANDIDATES).warp.identity


def test_too_few_points_or_no_candidate_leave_the_scales_alone() -> None:
    x = _points(7)  # fewer than 2 (d + 1)
    assert choose(x, _width_effect(x), CANDIDATES).warp.identity
    x = _points(40)
    none = Warp(np.zeros(3, dtype=bool), LOW, HIGH)
    assert choose(x, _width_effect(x), none).warp.identity


def test_the_warped_spline_interpolates_and_predicts_a_log_effect_better() -> None:
    x, test = _points(30), _points(500, seed=1)
    y = _width_effect(x)
    warp = choose(x, y, CANDIDATES).warp
    warped = fit_warped(x, y, warp, lambda p, v: PolyharmonicSpline(p, v))
    plain = PolyharmonicSpline(x, y)
    assert isinstance(warped, WarpedSpline)
    assert np.array_equal(warped.points, x)  # unit points, as distances and candidates use
    assert np.allclose(warped(x), y, atol=1e-8)
    error = np.abs(warped(test) - _width_effect(test)).mean()
    assert error < 0.5 * np.abs(plain(test) - _width_effect(test)).mean()
    h, at = 1e-6, test[:5]
    numeric = np.column_stack(
        [(warped(at + h * e) - warped(at - h * e)) / (2 * h) for e in np.eye(3)]
    )
    assert np.allclose(warped.gradient(at), numeric, rtol=1e-4, atol=1e-6)
    again = warped.refit(x[:-1], y[:-1])
    assert isinstance(again, WarpedSpline) and np.allclose(again(x[:-1]), y[:-1], atol=1e-8)


def test_the_identity_warp_fits_the_plain_spline() -> None:
    x = _points(20)
    y = _width_effect(x)
    spline = fit_warped(x, y, identity_warp(3), lambda p, v: PolyharmonicSpline(p, v))
    assert type(spline) is PolyharmonicSpline


SPACE = SearchSpace(
    [
        Dim("width", "int", 16, 1024),
        Dim("lr", "float", 1e-4, 1e-1, log=True),
        Dim("m", "float", 0.0, 1.0),
    ]
)


def _accuracy(p: dict) -> float:
    return 60.0 + 4.0 * np.log(p["width"]) - 2.0 * (np.log10(p["lr"]) + 2.5) ** 2 - p["m"]


def _told(settings: SearchSettings, extra: int = 6) -> SplineOptimizer:
    opt = SplineOptimizer(SPACE, settings)
    for params in opt.initial_design():
        opt.tell(params, _accuracy(params))
    for _ in range(extra):
        for proposal in opt.suggest():
            opt.tell(proposal.params, _accuracy(proposal.params))
    return opt


def test_the_search_warps_undeclared_positive_dimensions_only_and_predicts_its_told_values() -> (
    None
):
    opt = _told(SearchSettings(seed=2))
    assert opt.warped_dimensions() == ["width"]  # lr is declared log, m may reach 0
    spline = opt.fit().splines[()]
    assert isinstance(spline, WarpedSpline)
    assert np.allclose(spline(spline.points), spline.values, atol=1e-8)
    (proposal,) = opt.suggest()
    assert proposal.predicted == pytest.approx(opt.predict(proposal.params), abs=1e-9)


def test_the_exact_fit_is_the_interpolant_the_chooser_scored(monkeypatch) -> None:
    """One solve fewer per refit: the search keeps the chooser's interpolant, which is
    the spline a fresh fit on the chosen scales gives."""
    import nas.search.optimizer as optimizer_module

    opt = _told(SearchSettings(seed=2))
    fits = []
    real = optimizer_module.PolyharmonicSpline
    monkeypatch.setattr(
        optimizer_module, "PolyharmonicSpline", lambda *a, **k: fits.append(a) or real(*a, **k)
    )
    opt.tell(opt.suggest()[0].params, 55.0)  # a refit
    spline = opt.fit().splines[()]
    assert fits == []
    assert isinstance(spline, WarpedSpline)
    fresh = PolyharmonicSpline(spline.warp.forward(spline.points), spline.values)
    probe = np.random.default_rng(1).random((50, 3))
    assert np.allclose(spline(probe), fresh(spline.warp.forward(probe)), atol=1e-9)


def test_warping_off_and_the_paper_strategy_keep_the_declared_scales() -> None:
    assert SearchSettings().warp_kind == "auto"
    assert SearchSettings(strategy="paper").warp_kind == "off"
    opt = _told(SearchSettings(seed=2, warping="off"))
    assert opt.warped_dimensions() == []
    assert type(opt.fit().splines[()]) is PolyharmonicSpline
    with pytest.raises(SettingError, match="warping"):
        SearchSettings(warping="log")


def test_status_names_the_warped_dimensions(tmp_path, capsys) -> None:
    """The fit `record` stores says which dimensions the spline saw on a log scale."""
    toml = experiment_toml(
        "toy",
        {
            "width": {"type": "int", "low": 16, "high": 1024},
            "m": {"type": "float", "low": 0.0, "high": 1.0},
        },
        metric="score",
        max_points=20,
    )
    state = init_state(tmp_path, capsys, toml)

    def status() -> dict:
        code, out, err = run(capsys, "status", "--state", str(state), "--json")
        assert code == 0, err
        return json.loads(out)

    def score(p: dict) -> float:
        return 50.0 + 4.0 * np.log(p["width"]) - 3.0 * (p["m"] - 0.4) ** 2

    for _ in range(6):
        for point in [p for p in status()["points"] if p["status"] == "pending"]:
            code, _, err = run(
                capsys,
                "record",
                "--state",
                str(state),
                str(point["id"]),
                repr(float(score(point["params"]))),
            )
            assert code == 0, err
        code, _, err = run(capsys, "propose", "--state", str(state))
        assert code == 0, err
    doc = status()
    assert doc["fit"]["warped"] == ["width"]
    code, out, _ = run(capsys, "status", "--state", str(state))
    assert "log scale for the spline (smaller leave-one-out error): width" in out


def test_leave_one_out_errors_are_refits_on_the_same_scales() -> None:
    x = _points(25)
    y = _width_effect(x)
    warp = choose(x, y, CANDIDATES).warp
    spline = fit_warped(x, y, warp, lambda p, v: PolyharmonicSpline(p, v))
    assert isinstance(spline, WarpedSpline)
    for k in (0, 7, 24):
        rest = np.arange(len(y)) != k
        without = spline.refit(x[rest], y[rest])
        assert spline.loo_errors()[k] == pytest.approx(y[k] - without(x[k]), abs=1e-8)
