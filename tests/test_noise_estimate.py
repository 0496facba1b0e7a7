"""The noise sd measured from the data (``noise = "auto"``): right where it can be, 0 where not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.search.noise import estimate_noise
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace


def smooth(x: np.ndarray) -> np.ndarray:
    """A smooth surface with range about 2 on the unit square (an interior maximum)."""
    return np.sin(3.0 * x[:, 0]) + np.cos(2.0 * x[:, 1]) - (x[:, 0] - 0.4) ** 2


def search_like(sd: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """100 noisy measurements placed as a search places them: a coarse 6 x 6 grid and a
    dense 8 x 8 cluster where it closes in (evenly spread points of a function this
    smooth leave 0.3 % noise below what the data can tell from the spline's roughness)."""
    coarse, fine = np.linspace(0.0, 1.0, 6), 0.5 + 0.03 * np.arange(-4, 4)
    x = np.array([(a, b) for a in coarse for b in coarse] + [(a, b) for a in fine for b in fine])
    return x, smooth(x) + sd * np.random.default_rng(seed).standard_normal(len(x))


@pytest.mark.parametrize("sd", [0.006, 0.02, 0.06])
def test_a_known_noise_is_measured_within_one_and_a_half_times_with_an_interval_around_it(
    sd: float,
) -> None:
    covered = 0
    for seed in range(3):
        estimate = estimate_noise(*search_like(sd, seed=seed))
        assert sd / 1.5 <= estimate.sd <= 1.5 * sd, (seed, estimate)
        assert 0.0 < estimate.low < estimate.sd < estimate.high
        assert estimate.note == "" and estimate.support == 100
        covered += estimate.low < sd < estimate.high
    assert covered >= 2


def test_exact_data_measure_no_noise() -> None:
    estimate = estimate_noise(*search_like(0.0))
    assert estimate.sd == 0.0 and estimate.mle < 1e-6
    assert estimate.low == 0.0 and estimate.note.startswith("unknown: not distinguishable")


def test_below_three_points_per_dimension_the_noise_is_unknown_and_the_spline_exact() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((20, 8))
    estimate = estimate_noise(x, np.sin(3.0 * x).sum(axis=1) + 0.1 * rng.standard_normal(20))
    assert (estimate.sd, estimate.note) == (0.0, "unknown: 20 points, 24 needed")
    space = SearchSpace([Dim(f"x{i}", "float", 0.0, 1.0) for i in range(8)])
    opt = SplineOptimizer(space, SearchSettings(noise="auto", tolerance=0.01))
    for row in x:
        opt.tell({f"x{i}": float(v) for i, v in enumerate(row)}, float(np.sin(3.0 * row).sum()))
    fit = opt.fit()
    assert fit.smoothing == 0.0 and fit.noise.sd == 0.0
    assert opt.stop_evidence().tolerance == 0.01  # the configured one: nothing raised it


def test_auto_noise_sets_the_tolerance_and_the_smoothing_from_the_measured_sd() -> None:
    space = SearchSpace([Dim("a", "float", 0.0, 1.0), Dim("b", "float", 0.0, 1.0)])
    opt = SplineOptimizer(space, SearchSettings(noise="auto", tolerance=0.01))
    x, y = search_like(0.05)
    for row, value in zip(x, y, strict=True):
        opt.tell({"a": float(row[0]), "b": float(row[1])}, float(value))
    fit = opt.fit()
    assert 0.05 / 1.5 <= opt.noise_sd() <= 0.075 and fit.noise.sd == opt.noise_sd()
    assert fit.smoothing > 0.0
    assert opt.stop_evidence().tolerance == pytest.approx(2.0 * opt.noise_sd())
    given = SplineOptimizer(space, SearchSettings(noise=opt.noise_sd(), tolerance=0.01))
    for record in opt.history:
        given.tell(record.params, record.value)
    assert given.fit().smoothing == fit.smoothing  # one rule: an sd given or measured
    assert SplineOptimizer(space, SearchSettings(noise=0.05)).noise_estimate() is None


def test_status_shows_the_measured_noise_with_its_interval_from_the_stored_fit(
    tmp_path, capsys
) -> None:
    text = experiment_toml(
        "toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, tolerance=0.01, noise="auto", max_points=200
    )
    state = init_state(tmp_path, capsys, text)
    x, y = search_like(0.05)
    for row, value in zip(4.0 * x - 2.0, y, strict=True):  # the unit square onto the box
        params = f"x={row[0]:.6f},y={row[1]:.6f}"
        code, _, err = run(capsys, "add", "--state", str(state), "--params", params,
                           "--value", f"{50.0 + value:.9f}")  # fmt: skip
        assert code == 0, err
    assert run(capsys, "propose", "--state", str(state))[0] == 0
    code, out, _ = run(capsys, "status", "--state", str(state), "--json")
    doc = json.loads(out)
    noise = doc["fit"]["noise"]
    assert code == 0 and 0.05 / 1.5 <= noise["sd"] <= 0.075
    assert noise["low"] < noise["sd"] < noise["high"] and noise["support"] == 100
    assert doc["stop"]["tolerance"] == pytest.approx(2.0 * noise["sd"])
    code, out, _ = run(capsys, "status", "--state", str(state))
    line = next(ln for ln in out.splitlines() if ln.startswith("noise sd"))
    assert f"{noise['sd']:.6g}" in line and "95 %" in line and "from 100 points" in line


def test_the_smoothing_is_the_most_likely_noise_to_signal_ratio() -> None:
    from nas.search.noise import MAX_SMOOTHING, estimate_noise, likelihood_smoothing
    from nas.search.noise import smoothing_for as fit

    rng = np.random.default_rng(8)
    x = rng.random((80, 2))
    truth = np.sin(4.0 * x[:, 0]) + np.cos(3.0 * x[:, 1])
    y = truth + 0.1 * rng.standard_normal(80)
    lams = [likelihood_smoothing(x, y, sd) for sd in (0.02, 0.1, 0.5)]
    assert 0.0 < lams[0] < lams[1] < lams[2]  # more noise, more smoothing
    estimate = estimate_noise(x, y)
    assert 0.05 < estimate.sd < 0.2
    smoothed = fit(x, y, estimate.sd)
    test = rng.random((2000, 2))
    exact = fit(x, y, 0.0)
    target = np.sin(4.0 * test[:, 0]) + np.cos(3.0 * test[:, 1])
    assert np.sqrt(np.mean((smoothed(test) - target) ** 2)) < 0.8 * np.sqrt(
        np.mean((exact(test) - target) ** 2)
    )
    assert likelihood_smoothing(x, rng.standard_normal(80), 1.0) == MAX_SMOOTHING  # pure noise
    plane = fit(x, 1.0 + x @ [2.0, -1.0], 0.1)  # linear data: any smoothing keeps the plane
    assert np.allclose(plane(test), 1.0 + test @ [2.0, -1.0], atol=1e-9)
