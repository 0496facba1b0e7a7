"""Numbers a reader can believe: clipped and flagged predictions, fresh fits, feasible proposals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state
from experiment_support import run
from test_ingest_files import good_result

from nas.config import parse_experiment
from nas.control import policy
from nas.control.ingest import check_result
from nas.record.state import UNCLIPPED
from nas.record.store import load_state

#: The design (ids 0..4: corners and centre of [4, 16]^2) and one more point: a crest whose
#: spline overshoots 100 % top-1 between the centre and (13, 13).
DESIGN_VALUES = {0: 99.0, 1: 60.0, 2: 99.5, 3: 80.0, 4: 80.0}
CREST = ("g1=13,g2=13", "99.8")


def measure_crest(capsys: pytest.CaptureFixture, state: Path) -> None:
    for point_id, value in DESIGN_VALUES.items():
        code, _, err = run(capsys, "record", "--state", str(state), str(point_id), str(value))
        assert code == 0, err
    code, _, err = run(
        capsys, "add", "--state", str(state), "--params", CREST[0], "--value", CREST[1]
    )
    assert code == 0, err


def test_record_and_add_store_a_fresh_fit_that_status_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init_state(tmp_path, experiment_text())
    measure_crest(capsys, state)
    stored = load_state(state).fits
    assert stored and len(stored[-1].support_ids) == len(DESIGN_VALUES) + 1
    doc = json.loads(run(capsys, "status", "--state", str(state), "--json")[1])
    assert doc["fit"]["measured_since"] == 0 and doc["fit"]["n_support"] == 6


def test_predictions_beyond_the_metric_range_are_clipped_in_proposals_and_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init_state(tmp_path, experiment_text())
    measure_crest(capsys, state)
    code, out, err = run(capsys, "propose", "--state", str(state), "--dry-run", "--json")
    assert code == 0, err
    proposals = json.loads(out)
    assert proposals and all(p["predicted"] <= 100.0 for p in proposals)
    assert any(p["predicted"] == 100.0 for p in proposals)  # the spline says more: clipped
    doc = json.loads(run(capsys, "status", "--state", str(state), "--json")[1])
    assert doc["fit"]["predicted_max"] > 100.0 and doc["fit"]["outside_range"]
    assert any("outside the valid range of top1" in note for note in doc["notes"])
    argmax = ",".join(f"{k}={v}" for k, v in doc["fit"]["argmax"].items())
    code, out, err = run(capsys, "predict", "--state", str(state), "--params", argmax, "--json")
    assert code == 0 and json.loads(out)["outside_range"] and json.loads(out)["predicted"] > 100
    assert "outside its valid range [0, 100]" in err
    code, out, err = run(
        capsys, "predict", "--state", str(state), "--params", "g1=4,g2=4", "--json"
    )
    assert not json.loads(out)["outside_range"] and "warning" not in err


def test_propose_refuses_candidates_the_controller_would_not_train(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "narrow_rule.py").write_text(
        "def small(values):\n    return None if values['g1'] <= 8 else 'g1 above 8 does not fit'\n"
    )
    text = experiment_text(model={"feasible": "narrow_rule:small"})
    state = init_state(tmp_path, text)
    measure_crest(capsys, state)
    doc = json.loads(run(capsys, "status", "--state", str(state), "--json")[1])
    assert doc["fit"]["argmax"]["g1"] > 8  # the spline's maximum is not trainable
    for args in (["--dry-run"], []):
        code, out, err = run(capsys, "propose", "--state", str(state), "-n", "2", "--json", *args)
        assert code == 0, err
        proposals = json.loads(out)
        assert proposals and all(p["params"]["g1"] <= 8 for p in proposals)


def test_value_range_applies_to_trainer_results(tmp_path: Path) -> None:
    text = experiment_text(experiment={"value_range": [0.0, 50.0]})
    measured = policy.measured(parse_experiment(text, "t.toml"))
    good_result(tmp_path / "0")  # top1 = 70: a valid percentage, outside [0, 50]
    check = check_result(tmp_path / "0", 0, {"g1": 8}, measured)
    assert check is not None and check.result is None
    assert "outside its valid range [0, 50]" in check.reason


def test_a_clipped_prediction_is_not_what_the_measurement_is_judged_against(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The spline says 100+ at a proposal; a measurement of 99.9 agrees with the clipped 100
    within the tolerance but not with the spline: the stop rule must see the spline's gap."""
    state = init_state(tmp_path, experiment_text())
    measure_crest(capsys, state)
    code, out, err = run(capsys, "propose", "--state", str(state), "-n", "3", "--json")
    assert code == 0, err
    points = {p.id: p for p in load_state(state).points}
    clipped = [points[p["id"]] for p in json.loads(out) if p["predicted"] == 100.0]
    assert clipped, "the crest should make the spline overshoot 100"
    point = clipped[0]
    assert point.predicted == 100.0 and point.judged_prediction > 100.0
    assert point.extra[UNCLIPPED] == point.judged_prediction
    kept = [points[p["id"]] for p in json.loads(out) if p["predicted"] < 100.0]
    assert all(p.judged_prediction == p.predicted and UNCLIPPED not in p.extra for p in kept)
    code, _, err = run(capsys, "record", "--state", str(state), str(point.id), "99.9")
    assert code == 0, err
    own_gap = point.judged_prediction - 99.9
    for exact in (True, False):  # the controller's decision and the readers' view
        study = policy.Study(load_state(state), parse_experiment(experiment_text(), "t.toml"))
        gaps = study.stop_evidence(exact=exact).gaps
        assert gaps[-1] == pytest.approx(own_gap)  # not 0.1, the clipped gap
    doc = json.loads(run(capsys, "status", "--state", str(state), "--json")[1])
    assert doc["stop"]["last_gaps"][-1] == pytest.approx(own_gap)
    code, out, _ = run(capsys, "show", "--state", str(state), str(point.id), "--json")
    assert code == 0 and json.loads(out)["predicted"] == 100.0  # people still see the clip


@pytest.mark.parametrize("stored", ["105", None, float("nan"), True, [1.0]])
def test_a_spline_prediction_that_is_not_a_number_falls_back_to_the_stored_one(stored) -> None:
    from nas.record.state import Point, PointStatus

    point = Point(0, {}, PointStatus.DONE, 1, "incremental", 0.0, 0.0, 99.0, 100.0)
    assert point.judged_prediction == 100.0  # nothing kept: the two are the same
    odd = Point(
        0, {}, PointStatus.DONE, 1, "incremental", 0.0, 0.0, 99.0, 100.0, extra={UNCLIPPED: stored}
    )
    assert odd.judged_prediction == 100.0
    kept = Point(
        0, {}, PointStatus.DONE, 1, "incremental", 0.0, 0.0, 99.0, 100.0, extra={UNCLIPPED: 104.5}
    )
    assert kept.judged_prediction == 104.5
