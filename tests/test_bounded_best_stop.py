"""Under ``[experiment.constraints]`` the best and the stop rule concern the points within the bounds.

A measured point beyond a bound (a design point whose measured cost broke
it, a network added by hand) stays in the fit, but the search cannot return
it: counted as "the best", no allowed point could beat it, the stall window
ran from the first proposal, the promised gain was negative for good and the
campaign stopped "converged" on an over-budget network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cost_support import accuracy, measured_design, resnet_experiment

from nas.commands.main import main
from nas.config import parse_experiment
from nas.control.constraints import Constraint, best_within
from nas.control.costs import known_cost
from nas.control.policy import Study, add_manual
from nas.record.state import PointStatus, State
from nas.record.store import StateStore
from nas.search.stopping import NONE_WITHIN, counted, decide, stall_length

#: The measured bound of the controlled search: device_hours = 0.001 * g1 * g2 at most this.
HOURS = 0.6


def device_hours(params: dict) -> float:
    """A measured cost that grows with both widths, as the trainer reports it."""
    return 0.001 * params["g1"] * params["g2"]


def test_the_stall_counts_only_points_within_the_bounds() -> None:
    values = [10.0, 5.0, 5.1, 5.05, 5.1]
    eligible = [False, True, True, True, True]
    assert stall_length(counted(values, eligible), 0.2) == 3  # since the first point within
    assert stall_length(values, 0.2) == 4  # the point beyond counted: flat from the start
    evidence = decide("default", values, [], 2, 0.2, eligible=eligible)
    assert evidence.stall == 3


@pytest.mark.parametrize("rule", ["default", "paper"])
def test_no_rule_stops_while_no_measured_point_meets_the_bounds(rule: str) -> None:
    values = [9.0 + 0.001 * i for i in range(20)]
    agreeing = [(v, v) for v in values[-5:]]
    evidence = decide(rule, values, agreeing, 2, 0.2, gain=lambda: 0.0, eligible=[False] * 20)
    assert not evidence.stop
    assert evidence.stall == 0
    assert NONE_WITHIN in evidence.reason


def test_the_best_and_the_promised_gain_are_of_the_best_point_within(tmp_path: Path) -> None:
    probe = parse_experiment(resnet_experiment())
    gmacs = known_cost(probe, "gmacs")
    low, high = gmacs({"g1": 4, "g2": 8}), gmacs({"g1": 32, "g2": 64})
    limit = low + 0.4 * (high - low)
    experiment = parse_experiment(resnet_experiment(constraints=f"gmacs = {limit!r}"))
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        study = measured_design(store.state, experiment)
        corner = {"g1": 32, "g2": 64}
        beyond, _ = add_manual(store.state, corner, accuracy(corner))
        assert gmacs(corner) > limit
        within = best_within(store.state, experiment, [Constraint("gmacs", limit)])
        assert within is not None and within.id != beyond.id
        assert max(store.state.with_status(PointStatus.DONE), key=lambda p: p.value) == beyond
        assert study.best() == within
        assert study.best(exact=False) == within
        assert study.raw_best() == within
        optimizer = study.optimizer
        assert optimizer.best == (within.params, within.value)
        assert optimizer.raw_best == (within.params, within.value)
        summary = optimizer.fit()
        assert summary is not None
        assert optimizer.predicted_gain() == pytest.approx(summary.predicted_max - within.value)
        assert optimizer.predicted_gain() > -1e-9, "the bounded argmax is at least the best within"


def test_best_without_where_names_the_best_within_the_experiments_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`best` read no bounds of its own: it named the over-budget corner status does not."""
    probe = parse_experiment(resnet_experiment())
    gmacs = known_cost(probe, "gmacs")
    limit = gmacs({"g1": 4, "g2": 8}) + 0.4 * (
        gmacs({"g1": 32, "g2": 64}) - gmacs({"g1": 4, "g2": 8})
    )
    experiment = parse_experiment(resnet_experiment(constraints=f"gmacs = {limit!r}"))
    path = tmp_path / "s.h5"
    with StateStore.create(path, experiment) as store:
        measured_design(store.state, experiment)
        corner = {"g1": 32, "g2": 64}
        beyond, _ = add_manual(store.state, corner, accuracy(corner))
        within = best_within(store.state, experiment, [Constraint("gmacs", limit)])
        store.commit()
    assert within is not None and within.id != beyond.id
    capsys.readouterr()
    assert main(["best", "--state", str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["best"]["id"] == within.id
    assert document["where"] == [str(Constraint("gmacs", limit))]


def _measure(state: State) -> None:
    """The metric and the measured cost of every pending point, as a trainer's result gives them."""
    for point in state.with_status(PointStatus.PENDING):
        state.record(point.id, accuracy(point.params))
        state.update_point(point.id, extra={"pace": {"device_hours": device_hours(point.params)}})


def test_a_design_point_beyond_a_measured_bound_does_not_stall_the_search(
    tmp_path: Path,
) -> None:
    text = resnet_experiment(settings="tolerance = 0.2", constraints=f"device_hours = {HOURS}")
    experiment = parse_experiment(text)
    lattice = [{"g1": a, "g2": b} for a in range(4, 33) for b in range(8, 65)]
    truth = max(accuracy(p) for p in lattice if device_hours(p) <= HOURS)
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        state = store.state
        study = Study(state, experiment)
        study.initial_batch()
        _measure(state)
        top = max(state.with_status(PointStatus.DONE), key=lambda p: p.value)
        assert device_hours(top.params) > HOURS, "the design's best breaks the measured bound"
        for _ in range(30):
            if study.converged():
                break
            study.propose()
            _measure(state)
            done = [p for p in state.with_status(PointStatus.DONE) if math.isfinite(p.value)]
            allowed = [device_hours(p.params) <= HOURS for p in done]
            expected = stall_length(counted([p.value for p in done], allowed), 0.2)
            assert study.stop_evidence().stall == expected
            assert study.stop_evidence(exact=False).stall == expected  # what status reads
            best = study.best()
            assert best is not None and device_hours(best.params) <= HOURS
        assert study.converged()
        best = study.best()
        assert best is not None and device_hours(best.params) <= HOURS
        assert best.value >= truth - 0.2
