"""Finding 3: the spline of a measured cost predicts positive costs, near a power law's truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cost_support import accuracy, resnet_experiment

from nas.config import parse_experiment
from nas.control.costs import cost_predictor, cost_source
from nas.control.policy import Study
from nas.record.state import PointStatus, State
from nas.record.store import StateStore
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings

EXTRA_POINTS = ({"g1": 6, "g2": 20}, {"g1": 20, "g2": 12}, {"g1": 12, "g2": 40})
GRID = [{"g1": g1, "g2": g2} for g1 in range(4, 33) for g2 in range(8, 65)]


def power_law(params: dict) -> float:
    """Device-hours as a product of widths, the shape costs of networks have."""
    return 0.001 * params["g1"] * params["g2"] ** 2 / 8


def measured_state(tmp_path: Path, cost: object) -> tuple[State, object]:
    """The design and three more points measured, each with ``cost(params)`` device-hours."""
    experiment = parse_experiment(resnet_experiment(), str(tmp_path / "e.toml"))
    store = StateStore.create(tmp_path / "s.h5", experiment)
    state = store.state
    Study(state, experiment).initial_batch()
    for params in EXTRA_POINTS:
        state.add_point(params, "manual", state.next_batch())
    for point in state.with_status(PointStatus.PENDING):
        state.update_point(point.id, extra={"pace": {"device_hours": cost(point.params)}})
        state.record(point.id, accuracy(point.params))
    return state, experiment


def raw_fit_error(state: State, truth: np.ndarray, cost: object) -> float:
    """The mean error of a spline of the raw costs (the fit before the log)."""
    raw = SplineOptimizer(state.space, SearchSettings(seed=1))
    for point in state.with_status(PointStatus.DONE):
        raw.tell(point.params, cost(point.params))
    return float(np.abs(raw.predict_interval(GRID)[0] - truth).mean())


def test_a_power_law_cost_is_predicted_positive_and_nearer_the_truth(tmp_path: Path) -> None:
    state, experiment = measured_state(tmp_path, power_law)
    predict = cost_predictor(state, experiment, cost_source(experiment, "device_hours"))
    values, errors = predict(GRID)
    truth = np.array([power_law(p) for p in GRID])
    assert np.all(values > 0) and np.all(errors >= 0)
    assert np.abs(values - truth).mean() < 0.1 * raw_fit_error(state, truth, power_law)


def test_a_cost_measured_at_zero_is_fitted_raw_and_clipped_at_zero(tmp_path: Path) -> None:
    def shifted(params: dict) -> float:  # 0 at the cheapest corner: no logarithm
        return power_law(params) - power_law({"g1": 4, "g2": 8})

    state, experiment = measured_state(tmp_path, shifted)
    predict = cost_predictor(state, experiment, cost_source(experiment, "device_hours"))
    values, _ = predict(GRID)
    assert np.all(values >= 0)
    assert values.min() == pytest.approx(0.0, abs=1e-12)
