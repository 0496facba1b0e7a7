"""``max_gpu_hours`` holds each proposal to the GPU-hours left, by its predicted device-hours.

The budget only stopped proposals once the results reported the limit, so the
last proposal could cost several times what was left: a 12 GPU-hour campaign
whose design spent 10.8 proposed a network predicted (and measured) at 6 GPU-hours
and ended at 16.8. The spline of the measured device-hours predicts that cost.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cost_support import accuracy, resnet_experiment

from nas.config import parse_experiment
from nas.control.budget import BUDGET_EVENT, gpu_budget
from nas.control.plan import next_batch
from nas.control.policy import Study, StudyError
from nas.record.state import PointStatus, State
from nas.record.store import StateStore
from nas.search.propose import SearchError


def device_hours(params: dict) -> float:
    """What a training costs: grows with both widths (a power law, as real networks')."""
    return 0.002 * params["g1"] * params["g2"]


def measure(state: State, point_id: int) -> None:
    """Record the point's accuracy and the device-hours its result would report (on a GPU)."""
    point = state.point(point_id)
    hours = device_hours(point.params)
    state.record(point_id, accuracy(point.params))
    state.update_point(point_id, gpu_hours=hours, extra={"pace": {"device_hours": hours}})


def spent(state: State) -> float:
    return sum(p.gpu_hours for p in state.points)


def design_then(tmp_path: Path, extra_hours: float, settings: str = ""):
    """A state with its corner design measured and ``max_gpu_hours`` that much above its cost."""
    probe = parse_experiment(resnet_experiment(settings=settings))
    with StateStore.create(tmp_path / "probe.h5", probe) as store:
        Study(store.state, probe).initial_batch()
        design = sum(device_hours(p.params) for p in store.state.points)
    limit = design + extra_hours
    experiment = parse_experiment(
        resnet_experiment(settings=f"max_gpu_hours = {limit!r}\n{settings}")
    )
    store = StateStore.create(tmp_path / "s.h5", experiment)
    study = Study(store.state, experiment)
    study.initial_batch()
    for point in store.state.with_status(PointStatus.PENDING):
        measure(store.state, point.id)
    return store, study, limit


def test_a_campaign_never_proposes_past_its_gpu_hours(tmp_path: Path) -> None:
    # the best network is the widest (4.1 GPU-h); 3 GPU-h are left after the design
    store, study, limit = design_then(tmp_path, extra_hours=3.0)
    with store:
        proposed = 0
        while True:
            try:
                points = study.propose(1)
            except (StudyError, SearchError):
                break
            for point in points:
                measure(store.state, point.id)
            proposed += len(points)
        assert proposed >= 2, "the hours left buy trainings; the rule must not refuse them all"
        assert spent(store.state) <= limit + 1e-9
        assert limit - spent(store.state) < device_hours({"g1": 4, "g2": 8}) * 4


def test_without_the_rule_the_widest_network_is_proposed_past_the_limit(tmp_path: Path) -> None:
    # the same campaign without the limit proposes what the limit refuses: the rule binds
    store, study, limit = design_then(tmp_path, extra_hours=1.5)
    with store:
        budget = gpu_budget(store.state, study.experiment)
        assert budget is not None and budget.left == pytest.approx(1.5)
        unbounded = Study(store.state, parse_experiment(resnet_experiment()))
        (first,) = unbounded.propose(1, dry_run=True)
        assert not budget.fits(first.params)
        assert spent(store.state) + device_hours(first.params) > limit


def test_points_still_out_count_with_their_predicted_hours(tmp_path: Path) -> None:
    store, study, _ = design_then(tmp_path, extra_hours=3.0)
    with store:
        before = gpu_budget(store.state, study.experiment)
        (point,) = study.propose(1)  # pending: not measured, not counted yet
        after = gpu_budget(store.state, study.experiment)
        assert before is not None and after is not None
        assert after.out == 1 and before.out == 0
        assert after.committed == pytest.approx(device_hours(point.params), rel=0.2)
        assert after.left == pytest.approx(before.left - after.committed)
        assert "predicted for the 1 point still out" in after.text()


def test_a_batch_is_cut_where_its_proposals_together_pass_the_hours_left(tmp_path: Path) -> None:
    store, study, _ = design_then(tmp_path, extra_hours=1.5, settings="batch_size = 4")
    with store:
        budget = gpu_budget(store.state, study.experiment)
        assert budget is not None
        points = study.propose(4)
        assert 1 <= len(points) < 4
        assert sum(device_hours(p.params) for p in points) <= budget.left * 1.05
        cut = [e for e in store.state.events if e.kind == BUDGET_EVENT]
        assert len(cut) == 1 and "left out of the batch" in cut[0].message
        assert "max_gpu_hours" in cut[0].message


def test_the_design_is_not_topped_up_for_measured_points_the_hours_left_exclude(
    tmp_path: Path,
) -> None:
    # the measured corners cost more than is left; the budget does not judge them, so the
    # design stays complete instead of growing "initial" points
    store, study, _ = design_then(tmp_path, extra_hours=0.5)
    with store:
        assert study.optimizer.unissued_design == []
        points = study.propose(1)
        assert all(p.origin != "initial" for p in points)


def test_the_stop_names_the_budget_when_no_candidate_fits(tmp_path: Path) -> None:
    store, study, _ = design_then(tmp_path, extra_hours=0.01)
    with store:
        stop, made = next_batch(study)
        assert made == []
        assert stop is not None and stop.ok
        assert "max_gpu_hours" in stop.reason and "GPU-hours left" in stop.reason


def test_a_campaign_that_counts_no_gpu_hours_is_not_held(tmp_path: Path) -> None:
    # a CPU run reports device-hours but counts no GPU-hours: the budget is never spent
    experiment = parse_experiment(resnet_experiment(settings="max_gpu_hours = 0.001"))
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        study = Study(store.state, experiment)
        study.initial_batch()
        for point in store.state.with_status(PointStatus.PENDING):
            store.state.record(point.id, accuracy(point.params))
            hours = device_hours(point.params)
            store.state.update_point(point.id, extra={"pace": {"device_hours": hours}})
        assert gpu_budget(store.state, experiment) is None
        assert len(study.propose(1)) == 1


def test_before_the_hours_can_be_predicted_every_candidate_fits(tmp_path: Path) -> None:
    experiment = parse_experiment(resnet_experiment(settings="max_gpu_hours = 100"))
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        study = Study(store.state, experiment)
        (first, *_) = study.initial_batch()
        measure(store.state, first.id)  # one point: no spline of the device-hours yet
        budget = gpu_budget(store.state, experiment)
        assert budget is not None
        assert budget.fits({"g1": 32, "g2": 64}) and budget.fits({"g1": 5, "g2": 9})
        assert math.isclose(budget.left, 100 - device_hours(first.params))


def test_a_refill_waits_for_the_points_still_out_instead_of_stopping(tmp_path: Path) -> None:
    # the point out takes what is left; a refill finds nothing that fits and waits for it
    # (it may cost less than predicted) instead of ending the campaign while it trains
    store, study, _ = design_then(
        tmp_path, extra_hours=1.5, settings="refill = true\nbatch_size = 2"
    )
    with store:
        (point,) = study.propose(1)
        assert gpu_budget(store.state, study.experiment).left < device_hours({"g1": 4, "g2": 8})
        assert next_batch(study) == (None, [])
        assert store.state.point(point.id).status is PointStatus.PENDING
        measure(store.state, point.id)
        stop, made = next_batch(study)  # nothing out: now the search may stop
        assert made == [] and stop is not None and "max_gpu_hours" in stop.reason


def test_the_budget_reached_prints_the_hours_with_the_limits_decimals(tmp_path: Path) -> None:
    experiment = parse_experiment(resnet_experiment(settings="max_gpu_hours = 0.48"))
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        (first, *_) = Study(store.state, experiment).initial_batch()
        store.state.record(first.id, 80.0)
        store.state.update_point(first.id, gpu_hours=0.48)
        reason = Study(store.state, experiment).budget_reason()
        assert reason == "max_gpu_hours reached: 0.48 of 0.48 GPU-hours used"


def test_status_says_how_much_of_what_is_left_the_points_out_take(tmp_path: Path, capsys) -> None:
    from experiment_support import run

    store, study, _ = design_then(tmp_path, extra_hours=3.0)
    with store:
        study.propose(1)
        store.commit()
    code, out, _ = run(capsys, "status", "--state", str(tmp_path / "s.h5"))
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("budget:"))
    assert "of them predicted for the points still out" in line, line
    code, out, _ = run(capsys, "status", "--state", str(tmp_path / "s.h5"), "--json")
    committed = json.loads(out)["budget"]["committed_gpu_hours"]
    assert committed == pytest.approx(2.25, rel=0.2)
