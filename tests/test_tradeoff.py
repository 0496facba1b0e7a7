"""``[experiment] tradeoff``: proposals aimed at the (metric, cost) front, its stop rule, and
``predict``'s error estimate."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from cost_support import accuracy, measure_pending, measured_design, resnet_experiment
from experiment_support import run

from nas.config import parse_experiment
from nas.control.costs import known_cost
from nas.control.policy import Study
from nas.record.store import StateStore
from nas.search.pareto import nondominated
from nas.search.space import Dim, SearchSpace
from nas.search.tradeoff import front_batch, front_gap, predict_front

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

TEXT = resnet_experiment(settings='tolerance = 0.5\ntradeoff = "gmacs"')


def test_trade_off_proposals_are_new_and_aim_at_the_front(tmp_path: Path) -> None:
    experiment = parse_experiment(TEXT)
    gmacs = known_cost(experiment, "gmacs")
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        study = Study(store.state, experiment)
        study.initial_batch()
        for _ in range(6):
            measure_pending(store.state)
            made = study.propose()
            assert made and all(p.origin == "incremental" for p in made)
            assert all(p.predicted is not None for p in made)
        points = store.state.points
    keys = [tuple(sorted(p.params.items())) for p in points]
    assert len(set(keys)) == len(keys), "never the same point twice"
    proposals = [p for p in points if p.origin == "incremental"]
    design = [p for p in points if p.origin == "initial"]
    # the design: the cheapest corner, then d+1 points spread over the cheaper half of the box
    assert len(design) == 4 and {"g1": 4, "g2": 8} in [p.params for p in design]
    assert max(gmacs(p.params) for p in design) < gmacs({"g1": 32, "g2": 64})
    # the proposals extend the front: some of them are on the measured front at the end
    costs = [gmacs(p.params) for p in points]
    front = {points[i].id for i in nondominated([p.value for p in points], costs)}
    assert any(p.id in front for p in proposals)


def test_stop_rule_needs_agreement_and_a_front_within_tolerance(tmp_path: Path) -> None:
    experiment = parse_experiment(TEXT)
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        evidence = measured_design(store.state, experiment).stop_evidence()
        assert evidence.rule == "tradeoff" and not evidence.stop
        assert "trade-off proposals" in evidence.reason


def test_front_gap_measures_how_far_a_prediction_beats_the_front() -> None:
    from nas.search.tradeoff import PredictedPoint

    front_m, front_c = np.array([1.0, 3.0]), np.array([1.0, 5.0])
    ahead = PredictedPoint({"x": 0}, 2.5, 0.1, 2.0)
    behind = PredictedPoint({"x": 1}, 2.0, 0.1, 6.0)
    assert front_gap(front_m, front_c, [ahead, behind]) == (1.5, ahead)
    gap, _ = front_gap(front_m, front_c, [behind])
    assert gap == -1.0


def test_front_batch_takes_the_largest_hypervolume_gain_and_skips_taken_points() -> None:
    space = SearchSpace([Dim("x", "int", 0, 10)])

    def metric(many):  # a concave trade-off: accuracy sqrt(x) at cost x
        x = np.array([p["x"] for p in many], dtype=float)
        return np.sqrt(x), np.zeros(len(many))

    def cost(many):
        return np.array([float(p["x"]) for p in many])

    measured = [({"x": 0}, 0.0, 0.0), ({"x": 10}, math.sqrt(10), 10.0)]
    picks = front_batch(space, metric, cost, measured, 3, seed=0, taken=[{"x": 4}])
    chosen = [p["x"] for p, _ in picks]
    assert 4 not in chosen and len(set(chosen)) == 3
    # brute force: the single best first pick maximises the area added under the staircase
    from nas.search.pareto import hypervolume

    reference = (0.0, 11.0)
    base = [0.0, math.sqrt(10)], [0.0, 10.0]

    def added(x: int) -> float:
        return hypervolume([*base[0], math.sqrt(x)], [*base[1], float(x)], reference)

    best = max((x for x in range(1, 10) if x != 4), key=added)
    assert chosen[0] == best


def test_a_point_still_training_counts_on_the_front_at_its_prediction() -> None:
    """Asked for one proposal while the batch's first trains, the search gives the batch's
    second, not the first's neighbour (which would add nearly the same area)."""
    space = SearchSpace([Dim("x", "int", 0, 40)])

    def metric(many):
        x = np.array([p["x"] for p in many], dtype=float)
        return np.sqrt(x), np.zeros(len(many))

    def cost(many):
        return np.array([float(p["x"]) for p in many])

    measured = [({"x": 0}, 0.0, 0.0), ({"x": 40}, math.sqrt(40), 40.0)]
    (first, m1), (second, _) = front_batch(space, metric, cost, measured, 2, seed=0)
    training = [(first, m1, float(first["x"]))]
    [(again, _)] = front_batch(
        space, metric, cost, measured, 1, seed=0, taken=[first], pending=training
    )
    assert again == second
    [(blind, _)] = front_batch(space, metric, cost, measured, 1, seed=0, taken=[first])
    assert abs(blind["x"] - first["x"]) == 1, "without it: the training point's neighbour"


def test_predicted_front_is_nondominated() -> None:
    pool = [{"x": i} for i in range(8)]
    values = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 6.0, 7.0])
    costs = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0])
    front = predict_front(
        pool, lambda m: (values, np.ones(8)), lambda m: (costs, np.zeros(8)), "maximize"
    )
    assert [p.params["x"] for p in front] == [pool[i]["x"] for i in nondominated(values, costs)]


def test_predict_states_an_error_and_what_it_means(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    experiment = parse_experiment(TEXT)
    state = tmp_path / "s.h5"
    with StateStore.create(state, experiment) as store:
        measured_design(store.state, experiment)
        store.state.add_point({"g1": 10, "g2": 20}, "manual", store.state.next_batch())
        store.state.record(store.state.points[-1].id, accuracy({"g1": 10, "g2": 20}))
        store.commit()
    code, out, err = run(
        capsys, "predict", "--state", str(state), "--params", "g1=12,g2=30", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["error"] > 0 and "leave-one-out" in doc["error_meaning"]
    code, out, err = run(
        capsys, "predict", "--state", str(state), "--params", "g1=10,g2=20", "--json"
    )
    assert json.loads(out)["error"] == 0.0, "a measured point is interpolated"
    code, out, err = run(capsys, "predict", "--state", str(state), "--params", "g1=12,g2=30")
    assert "error estimate +/-" in err and "held-out measurements" in err


def test_benchmark_macs_are_the_cost_models() -> None:
    from tradeoff import resnet_gmacs

    from nas.models.cost import count_macs
    from nas.models.resnet import ResNetSpec

    for widths, depths in [((64, 128, 256, 512), (2, 2, 2, 2)), ((70, 130, 300), (3, 1, 5))]:
        spec = ResNetSpec(block="basic", depths=depths, widths=widths)
        got = resnet_gmacs(np.array([widths]), np.array([depths]))[0]
        assert got * 1e9 == pytest.approx(count_macs(spec, 224), rel=1e-12)


def test_plot_and_report_draw_the_front(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = resnet_experiment(settings='tradeoff = "gmacs"', constraints="gmacs = 0.002")
    experiment = parse_experiment(text)
    state = tmp_path / "s.h5"
    with StateStore.create(state, experiment) as store:
        measured_design(store.state, experiment)
        store.commit()
    code, out, err = run(
        capsys, "plot", "--state", str(state), "--out", str(tmp_path / "png"), "--json"
    )
    assert code == 0, err
    front = tmp_path / "png" / "front.png"
    assert str(front) in json.loads(out)["plots"]
    assert front.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, "report", "--state", str(state), "--out", str(tmp_path / "html"))
    assert code == 0, err
    page = (tmp_path / "html" / "index.html").read_text()
    assert "(front.png)" in page and "measured trade-off front" in page
