"""The stop rule under noise: progress judged on smoothed values, agreement on measurements."""

from __future__ import annotations

import numpy as np
import pytest
from experiment_support import FLOAT_BOX, experiment_toml

from nas.config import parse_experiment
from nas.control import policy
from nas.record.state import State
from nas.record.store import load_state, write_state
from nas.search.stopping import decide, stall_length


def _agreeing(n: int) -> list[tuple[float, float]]:
    return [(1.0, 1.0)] * n


def test_a_lucky_early_draw_does_not_pass_for_a_stall_when_smoothed_values_climb() -> None:
    # one measurement drew +3 sd early; the search then climbs steadily on the smoothed
    # values, 0.1 per step, while no later raw value beats the lucky one by 2 sd
    sd, tol = 1.0, 0.5
    smoothed = [0.1 * i for i in range(30)]
    values = list(smoothed)
    values[3] = smoothed[3] + 3 * sd + 2.5  # the lucky draw
    assert stall_length(values, 2 * sd) >= 20  # raw values at 2 sd: a long stall
    raw = decide("default", values, _agreeing(5), 2, tol, sd, gain=lambda: 0.0)
    assert raw.stall >= 20 and raw.stop and raw.progress_tolerance is None
    fair = decide("default", values, _agreeing(5), 2, tol, sd, gain=lambda: 0.0, smoothed=smoothed)
    assert fair.stall < 12 and not fair.stop
    assert fair.tolerance == 2 * sd and fair.progress_tolerance == tol
    assert "best smoothed value flat (within 0.5)" in fair.reason


def test_the_argmax_must_promise_less_than_the_configured_tolerance_under_noise() -> None:
    sd, tol = 1.0, 0.5
    values = [1.0] * 30
    promising = decide(
        "default", values, _agreeing(5), 2, tol, sd, gain=lambda: 1.0, smoothed=values
    )
    assert not promising.stop and "still promises 1" in promising.reason
    flat = decide("default", values, _agreeing(5), 2, tol, sd, gain=lambda: 0.4, smoothed=values)
    assert flat.stop and "best smoothed value rose by less than 0.5" in flat.reason
    # the agreements are still held to twice the sd: a gap of 1.5 passes
    noisy_gaps = decide(
        "default", values, [(2.5, 1.0)] * 5, 2, tol, sd, gain=lambda: 0.4, smoothed=values
    )
    assert noisy_gaps.stop


def test_without_noise_smoothed_values_change_nothing() -> None:
    values = [0.1 * i for i in range(20)] + [1.9] * 14
    plain = decide("default", values, _agreeing(5), 2, 0.5, 0.0, gain=lambda: 0.0)
    same = decide(
        "default", values, _agreeing(5), 2, 0.5, 0.0, gain=lambda: 0.0, smoothed=values[::-1]
    )
    assert plain == same
    with pytest.raises(ValueError, match="2 smoothed values for 34"):
        decide("default", values, _agreeing(5), 2, 0.5, 1.0, smoothed=[0.0, 1.0])


def _noisy_state(noise: object) -> tuple[State, object]:
    space = {"x": FLOAT_BOX, "y": {"type": "int", "low": -20, "high": 20}}
    exp = parse_experiment(experiment_toml("bowl", space, noise=noise), "bowl.toml")
    state = State(exp.text, exp.space)
    rng = np.random.default_rng(3)
    for _ in range(4):
        batch = policy.Study(state, exp).initial_batch() or policy.Study(state, exp).propose()
        for point in batch:
            p = point.params
            true = 10.0 - (p["x"] - 0.7) ** 2 - ((p["y"] + 3) / 10) ** 2
            state.record(point.id, true + 0.4 * float(rng.standard_normal()))
    policy.Study(state, exp).store_fit()
    return state, exp


@pytest.mark.parametrize("noise", [0.4, "auto"])
def test_the_controller_stores_the_smoothed_values_and_readers_decide_as_it_does(
    tmp_path, noise
) -> None:
    state, exp = _noisy_state(noise)
    study = policy.Study(state, exp)
    fit = state.fits[-1]
    assert len(fit.fitted) == len(fit.support_ids) > 0
    fitted = study.optimizer.fitted_values([state.point(i).params for i in fit.support_ids])
    assert fit.fitted == pytest.approx(fitted, abs=1e-9)
    measured = {i: state.point(i).value for i in fit.support_ids}
    assert any(abs(fit.fitted[k] - measured[i]) > 1e-6 for k, i in enumerate(fit.support_ids))
    path = tmp_path / "noisy.h5"
    write_state(state, path)
    loaded = load_state(path)
    assert loaded.fits[-1].fitted == pytest.approx(fit.fitted)
    reader = policy.Study(loaded, exp)
    exact, stored = study.stop_evidence(), reader.stop_evidence(exact=False)
    assert (exact.stall, exact.stop, exact.progress_tolerance) == (
        stored.stall,
        stored.stop,
        stored.progress_tolerance,
    )
    if noise == 0.4:  # twice the sd is above the tolerance: progress is judged on smoothed values
        assert exact.progress_tolerance == exp.experiment.tolerance < exact.tolerance
    assert reader._optimizer is None  # answered from the stored fit


def test_an_exact_search_stores_no_smoothed_values() -> None:
    space = {"x": FLOAT_BOX, "y": {"type": "int", "low": -20, "high": 20}}
    exp = parse_experiment(experiment_toml("bowl", space), "bowl.toml")
    state = State(exp.text, exp.space)
    for point in policy.Study(state, exp).initial_batch():
        state.record(point.id, float(point.params["y"]))
    policy.Study(state, exp).store_fit()
    assert state.fits[-1].fitted == ()
