"""Measurements too large for a fit: refused where they enter, explained where they are stored.

Beyond ±``MAX_MEASUREMENT`` the spline's squares overflow: ``record`` and
``add`` refuse such a value, a result file too, and a state that holds one
from before gets one line from every reader, never a traceback or a NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.commands.main import main
from nas.config import parse_experiment
from nas.control import policy
from nas.record.store import StateStore

TOML = experiment_toml("toy", {"x": FLOAT_BOX, "y": FLOAT_BOX}, metric="loss", goal="minimize")
TYPO = "point 0 measured 1e+308, beyond ±1e+150: more than a spline fit can take"


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    return init_state(tmp_path, capsys, TOML)


def test_record_and_add_refuse_a_value_a_fit_cannot_take(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    before = toy.read_bytes()
    code, _, err = run(capsys, "record", "--state", str(toy), "0", "1e308")
    assert code == 1 and "loss = 1e+308, beyond ±1e+150: more than" in err and err.count("\n") == 1
    code, _, err = run(
        capsys, "add", "--state", str(toy), "--params", "x=0,y=0", "--value", "-2e150"
    )
    assert code == 1 and "loss = -2e+150, beyond ±1e+150: more than" in err
    assert toy.read_bytes() == before
    assert run(capsys, "record", "--state", str(toy), "0", "1e150")[0] == 0  # the bound itself


def test_a_result_file_is_held_to_the_same_bound() -> None:
    experiment = parse_experiment(TOML, "toy.toml")
    assert policy.measured(experiment).valid == (-1e150, 1e150)


def test_an_undefined_prediction_lies_outside_no_range() -> None:
    """NaN is not "outside the valid range": readers say why it is undefined instead."""
    experiment = parse_experiment(TOML, "toy.toml")
    assert not policy.outside_range(experiment, math.nan)
    assert policy.outside_range(parse_experiment(TOML.replace('"loss"', '"top1"'), "t"), 101.0)


@pytest.fixture(scope="module")
def oversized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state that holds ±1e308 from before the bound, and the fit stored on it, whose
    numbers are not finite (read only)."""
    folder = tmp_path_factory.mktemp("oversized")
    (folder / "toy.toml").write_text(TOML)
    state = folder / "toy.h5"
    assert main(["init", str(folder / "toy.toml"), "--state", str(state)]) == 0
    with StateStore.open(state) as store:
        store.state.record(0, 1e308)
        store.state.record(1, -1e308)
        store.commit()
    for point_id, value in ((2, "1"), (3, "2")):
        assert main(["record", "--state", str(state), str(point_id), value]) == 0
    return state


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "--params", "x=0.5,y=0.5"],
        ["predict", "--params", "x=0.5,y=0.5", "--json"],
        ["propose", "--dry-run"],
        ["propose", "--dry-run", "--json"],
    ],
)
def test_a_stored_oversized_value_is_named_not_fitted(
    oversized: Path, capsys: pytest.CaptureFixture, argv: list[str]
) -> None:
    code, out, err = run(capsys, argv[0], "--state", str(oversized), *argv[1:])
    assert code == 1 and TYPO in err and "Traceback" not in err, err
    assert "nan" not in out.lower()


def test_status_says_why_there_is_no_usable_fit(
    oversized: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, _ = run(capsys, "status", "--state", str(oversized))
    assert code == 0 and f"note: no usable fit: {TYPO}" in out
    code, out, _ = run(capsys, "status", "--state", str(oversized), "--json")
    assert json.loads(out)["notes"][0].startswith(f"no usable fit: {TYPO}")


def test_plot_and_report_draw_a_state_with_huge_values(
    oversized: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "plot", "--state", str(oversized), "--out", str(tmp_path / "p"))
    assert code == 0 and "projections.png" in err, err
    code, _, err = run(capsys, "report", "--state", str(oversized), "--out", str(tmp_path / "r"))
    assert code == 0, err


def test_a_proposal_predicted_as_nan_is_never_proposed(
    toy: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nas.search.optimizer import Proposal

    for point_id in range(5):
        assert run(capsys, "record", "--state", str(toy), str(point_id), str(point_id))[0] == 0
    unstable = [Proposal({"x": 0.5, "y": 0.5}, float("nan"), "incremental")]
    monkeypatch.setattr(policy.Study, "_suggest", lambda *_: unstable)
    before = toy.read_bytes()
    code, out, err = run(capsys, "propose", "--state", str(toy))
    assert (code, out) == (1, "") and "the measured points make an unstable fit" in err
    assert toy.read_bytes() == before
