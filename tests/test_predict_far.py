"""`predict --extrapolate` says what it evaluated and refuses what it cannot evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_support import experiment_toml, init_state, run

SPACE = {
    "g1": {"type": "int", "low": 4, "high": 32},
    "g2": {"type": "float", "low": 0.0, "high": 1.0},
}


@pytest.fixture
def fitted(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A search with eight imported measurements of a smooth surface: a spline to ask."""
    state = init_state(tmp_path, capsys, experiment_toml("far", SPACE, max_points=40))
    rows = [
        (g1, g2, 70 + 0.5 * g1 - 8 * (g2 - 0.6) ** 2)
        for g1, g2 in [
            (4, 0.1),
            (32, 0.9),
            (18, 0.5),
            (10, 0.8),
            (25, 0.2),
            (7, 0.4),
            (29, 0.6),
            (14, 0.3),
        ]
    ]
    source = tmp_path / "earlier.csv"
    source.write_text("g1,g2,value\n" + "".join(f"{a},{b},{v:.4f}\n" for a, b, v in rows))
    assert run(capsys, "import", "--state", str(state), str(source))[0] == 0
    return state


def test_an_extrapolated_value_is_noted_as_evaluated_not_as_stored(
    fitted: Path, capsys: pytest.CaptureFixture
) -> None:
    """The note names the value the spline was evaluated at (200), not a bound it never used."""
    argv = ["predict", "--state", str(fitted), "--params", "g1=200,g2=0.5", "--extrapolate"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert "note: g1=200 evaluated as given (outside the box, extrapolated)" in err
    assert "stored as" not in err


@pytest.mark.parametrize("far", ["1e300", "-1e200", "1e155"])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_prediction_too_far_to_compute_is_one_clear_error(
    fitted: Path, capsys: pytest.CaptureFixture, far: str, as_json: bool
) -> None:
    """Far enough out the spline's r^3 terms overflow: an error line, no NaN, no traceback."""
    argv = ["predict", "--state", str(fitted), "--params", f"g1={far},g2=0.5", "--extrapolate"]
    code, out, err = run(capsys, *argv, *(["--json"] if as_json else []))
    assert code == 1
    assert out == "" if not as_json else json.loads(out)["exit_code"] == 1
    assert "cannot be evaluated that far outside the box" in err
    if as_json:
        assert "cannot be evaluated that far outside the box" in json.loads(out)["error"]
    assert "Traceback" not in err and "RuntimeWarning" not in err and "nan" not in err


def test_a_far_but_computable_prediction_is_still_given(
    fitted: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["predict", "--state", str(fitted), "--params", "g1=1e4,g2=0.5", "--extrapolate"]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    assert isinstance(json.loads(out)["predicted"], float)


def test_a_snapped_value_is_noted_as_evaluated_there_not_as_stored(
    fitted: Path, capsys: pytest.CaptureFixture
) -> None:
    """``predict`` stores nothing: its note says where the spline was evaluated."""
    code, _, err = run(capsys, "predict", "--state", str(fitted), "--params", "g1=20.4,g2=0.5")
    assert code == 0, err
    assert "note: g1=20.4 evaluated at 20, the nearest integer" in err and "stored" not in err


def test_a_log_scale_value_that_cannot_be_extrapolated_is_named_before_any_note(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    space = {**SPACE, "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}}
    state = init_state(tmp_path, capsys, experiment_toml("logfar", space))
    argv = ["predict", "--state", str(state), "--params", "g1=20,g2=0.5,lr=0", "--extrapolate"]
    code, _, err = run(capsys, *argv)
    assert code == 1 and "lr=0: a log-scale dimension needs a positive value" in err
    assert "evaluated as given" not in err


def test_a_value_is_named_as_given_not_in_six_digits(
    fitted: Path, capsys: pytest.CaptureFixture
) -> None:
    """Six digits made 100.0000001 read "100", a legal value, in its own refusal."""
    code, _, err = run(capsys, "record", "--state", str(fitted), "0", "100.0000001")
    assert code == 1 and "top1 = 100.0000001 is outside its valid range [0, 100]" in err
    code, _, err = run(capsys, "record", "--state", str(fitted), "0", "71.9999999")
    assert code == 0 and "recorded 71.9999999" in err, err


def test_show_names_the_splines_minimum_under_minimize(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    text = experiment_toml("low", SPACE, metric="loss", goal="minimize", max_points=40)
    state = init_state(tmp_path, capsys, text)
    rows = [(4, 0.1, 3.0), (32, 0.9, 2.0), (18, 0.5, 1.0), (10, 0.8, 1.5), (25, 0.2, 2.5)]
    source = tmp_path / "earlier.csv"
    source.write_text("g1,g2,value\n" + "".join(f"{a},{b},{v}\n" for a, b, v in rows))
    assert run(capsys, "import", "--state", str(state), str(source))[0] == 0
    code, out, err = run(capsys, "show", "--state", str(state), "0")
    assert code == 0, err
    assert "the spline's predicted minimum: " in out and "maximum" not in out
