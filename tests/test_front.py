"""``splinenas front`` and ``splinenas best`` on real state files of a built-in family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cost_support import measure_pending, resnet_experiment
from experiment_support import run

from nas.record.state import PointStatus
from nas.record.store import StateStore
from nas.search.pareto import nondominated

EXPERIMENT = resnet_experiment()


@pytest.fixture
def measured(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A state whose initial design and a few more points are measured."""
    (tmp_path / "costly.toml").write_text(EXPERIMENT)
    state = tmp_path / "costly.h5"
    code, _, err = run(capsys, "init", str(tmp_path / "costly.toml"), "--state", str(state))
    assert code == 0, err
    for params in ({"g1": 6, "g2": 20}, {"g1": 20, "g2": 12}, {"g1": 12, "g2": 40}):
        code, _, err = run(
            capsys, "add", "--state", str(state), "--params", f"g1={params['g1']},g2={params['g2']}"
        )
        assert code == 0, err
    with StateStore.open(state) as store:
        measure_pending(store.state)
        store.commit()
    return state


def cost_of(capsys: pytest.CaptureFixture, experiment: Path, params: dict) -> float:
    text = ",".join(f"{k}={v}" for k, v in params.items())
    code, out, err = run(capsys, "cost", str(experiment), "--params", text, "--json")
    assert code == 0, err
    return json.loads(out)["macs"] / 1e9


def test_front_is_the_measured_nondominated_set_with_the_cost_commands_numbers(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "front", "--state", str(measured), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["cost"], doc["goal"]) == ("gmacs", "maximize")
    points = StateStore.read(measured).with_status(PointStatus.DONE)
    experiment = measured.with_suffix(".toml")
    costs = {p.id: cost_of(capsys, experiment, p.params) for p in points}
    expected = nondominated([p.value for p in points], [costs[p.id] for p in points])
    assert [m["id"] for m in doc["measured"]] == [points[i].id for i in expected]
    for entry in doc["measured"]:
        assert entry["cost"] == costs[entry["id"]]
        assert entry["metric"] == next(p.value for p in points if p.id == entry["id"])
    # by hand: no measured point beats a front point in both, every other one is beaten
    front = {m["id"] for m in doc["measured"]}
    for p in points:
        beaten = any(
            q.value >= p.value
            and costs[q.id] <= costs[p.id]
            and (q.value, costs[q.id]) != (p.value, costs[p.id])
            for q in points
        )
        assert beaten == (p.id not in front)
    assert doc["predicted"], "a fitted spline predicts a front"
    for entry in doc["predicted"]:
        assert entry["metric_error"] is not None and entry["metric_error"] >= 0
        assert entry["cost"] == pytest.approx(cost_of(capsys, experiment, entry["params"]))


def test_front_text_lists_both_fronts(measured: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "front", "--state", str(measured), "--cost", "params_m")
    assert code == 0, err
    assert "measured front of top1 (maximize) against params_m" in out
    assert "predicted front" in out


def test_front_on_a_measured_cost_the_points_lack_says_so(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(
        capsys,
        "front",
        "--state",
        str(measured),
        "--cost",
        "device_hours",
        "--json",
        "--measured-only",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["measured"] == [] and doc["without_cost"] > 0
    assert "have no device_hours" in err


def test_a_cost_name_no_result_carries_is_named_with_the_costs_there_are(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    """A typo of a known cost reads as a measured cost no result has: both commands say so
    and list the names the user may have meant, instead of an empty front or "no point"."""
    with StateStore.open(measured) as store:
        for point in store.state.with_status(PointStatus.DONE):
            store.state.update_point(point.id, extra={"metrics": {"top5": 90.0}})
        store.commit()
    meant = "(measured: top5; known: gmacs, params_m, memory_gib)"
    code, _, err = run(capsys, "best", "--state", str(measured), "--where", "gmacz<=20")
    assert code == 1 and "no measured point meets gmacz <= 20" in err
    assert f"note: no measured point has a cost named 'gmacz' {meant}" in err
    code, _, err = run(capsys, "front", "--state", str(measured), "--cost", "nope", "--json")
    assert code == 0 and f"note: no measured point has a cost named 'nope' {meant}" in err
    code, _, err = run(capsys, "best", "--state", str(measured), "--where", "gmacs<=0")
    assert code == 1 and "cost named" not in err  # a known cost: no point is simply that small


def test_the_searched_metric_is_no_cost_to_trade_it_against(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "front", "--state", str(measured), "--cost", "top1", "--json")
    assert code == 2 and json.loads(out)["exit_code"] == 2
    assert "--cost top1: is the searched metric" in err


def test_front_reads_a_measured_cost_from_the_points(
    measured: Path, capsys: pytest.CaptureFixture
) -> None:
    with StateStore.open(measured) as store:
        for point in store.state.with_status(PointStatus.DONE):
            hours = point.params["g1"] * point.params["g2"] / 100.0
            store.state.update_point(point.id, extra={"pace": {"device_hours": hours}})
        store.commit()
    code, out, err = run(
        capsys, "front", "--state", str(measured), "--cost", "device_hours", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    points = StateStore.read(measured).with_status(PointStatus.DONE)
    hours = [p.params["g1"] * p.params["g2"] / 100.0 for p in points]
    expected = nondominated([p.value for p in points], hours)
    assert [m["id"] for m in doc["measured"]] == [points[i].id for i in expected]
    assert all(np.isfinite(p["cost_error"]) for p in doc["predicted"])


def test_best_under_a_budget(measured: Path, capsys: pytest.CaptureFixture) -> None:
    experiment = measured.with_suffix(".toml")
    points = StateStore.read(measured).with_status(PointStatus.DONE)
    costs = {p.id: cost_of(capsys, experiment, p.params) for p in points}
    limit = sorted(costs.values())[len(costs) // 2]
    code, out, err = run(
        capsys, "best", "--state", str(measured), "--where", f"gmacs<={limit!r}", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    within = [p for p in points if costs[p.id] <= limit]
    top = max(within, key=lambda p: p.value)
    assert doc["best"]["id"] == top.id
    assert doc["best"]["costs"]["gmacs"] <= limit
    unconstrained = max(points, key=lambda p: p.value)
    assert costs[unconstrained.id] > limit, "the bound must bind for this test to mean anything"


def test_best_where_nothing_fits_fails(measured: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "best", "--state", str(measured), "--where", "gmacs<=0")
    assert code == 1 and "no measured point meets gmacs <= 0" in err


@pytest.mark.parametrize("where", ["gmacs<20", "gmacs<=lots", "<=3", "gmacs<=inf"])
def test_best_rejects_a_malformed_bound(
    measured: Path, capsys: pytest.CaptureFixture, where: str
) -> None:
    code, _, err = run(capsys, "best", "--state", str(measured), "--where", where)
    assert code == 2 and "--where" in err and "Traceback" not in err
