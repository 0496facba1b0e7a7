"""The glue between state and optimizer: batches, fits, budgets, convergence."""

from __future__ import annotations

import dataclasses
import math

import pytest
from experiment_support import FLOAT_BOX, experiment_toml

from nas.config import Experiment, parse_experiment
from nas.control import policy
from nas.record.state import PointStatus, State, StateError

S = PointStatus


def experiment(**settings: object) -> Experiment:
    space = {"x": FLOAT_BOX, "y": {"type": "int", "low": -20, "high": 20}}
    return parse_experiment(experiment_toml("bowl", space, **settings), "bowl.toml")


def bowl(params: dict) -> float:
    return 10.0 - (params["x"] - 0.7) ** 2 - ((params["y"] + 3) / 10) ** 2


def new_state(exp: object) -> State:
    return State(exp.text, exp.space)


def measure(state: State, batch: list) -> None:
    for point in batch:
        state.record(point.id, bowl(point.params))


def test_initial_batch_is_the_design_as_pending_batch_zero() -> None:
    exp = experiment()
    state = new_state(exp)
    points = policy.Study(state, exp).initial_batch()
    assert [p.params for p in points] == exp.space.initial_design()
    assert {(p.status, p.origin, p.batch, p.predicted) for p in points} == {
        (S.PENDING, "initial", 0, None)
    }
    assert policy.Study(state, exp).propose() == []  # nothing to fit while the design is unmeasured
    assert "no point is measured yet" in policy.Study(state, exp).fit_blocker()


def test_build_optimizer_tells_measured_and_avoids_all_other_points() -> None:
    exp = experiment(batch_size=2)
    state = new_state(exp)
    design = policy.Study(state, exp).initial_batch()
    measure(state, design[:4])
    state.set_status(design[4].id, S.SUBMITTING)
    optimizer = policy.Study(state, exp).optimizer
    assert optimizer.n_measured == 4
    assert optimizer.pending == [design[4].params]
    # four measured points determine a spline in 2-d: the fit does not wait for the
    # fifth design point, which is in flight and never re-issued
    suggested = optimizer.suggest()
    assert [p.origin for p in suggested] == ["incremental", "fill"]
    keys = {exp.space.key(p.params) for p in suggested}
    assert not keys & {exp.space.key(p.params) for p in design}


def test_a_search_fits_measurements_that_are_not_its_design() -> None:
    """Warm start: the centre was measured at a nearby architecture, not the design's."""
    exp = experiment()
    state = new_state(exp)
    design = policy.Study(state, exp).initial_batch()
    centre = design[2]  # stays pending: nothing needs cancelling
    measure(state, [p for p in design if p.id != centre.id])
    nearby = {"x": centre.params["x"] + 0.3, "y": centre.params["y"] + 1}
    point, _ = policy.add_manual(state, nearby, value=bowl(nearby))
    study = policy.Study(state, exp)
    summary = study.fit_summary()
    assert summary is not None and summary.n_support == 5
    (proposal,) = study.propose()
    assert proposal.origin == "incremental" and proposal.predicted is not None
    assert point.id in state.fits[-1].support_ids
    assert exp.space.key(proposal.params) != exp.space.key(centre.params)


def test_a_failed_design_point_does_not_hold_up_the_search() -> None:
    exp = experiment()
    state = new_state(exp)
    design = policy.Study(state, exp).initial_batch()
    measure(state, design[1:])
    state.set_status(design[0].id, S.INFEASIBLE, reason="out of GPU memory")
    (point,) = policy.Study(state, exp).propose()
    assert point.origin == "incremental"
    assert state.fits[-1].support_ids == tuple(p.id for p in design[1:])
    assert exp.space.key(point.params) != exp.space.key(design[0].params)


def test_propose_batch_stores_predictions_and_the_fit() -> None:
    exp = experiment(batch_size=2)
    state = new_state(exp)
    design = policy.Study(state, exp).initial_batch()
    measure(state, design)
    points = policy.Study(state, exp).propose()
    assert len(points) == 2
    assert [(p.origin, p.batch, p.status) for p in points] == [
        ("incremental", 1, S.PENDING),
        ("fill", 1, S.PENDING),  # slot 2 of the default strategy's diverse batch
    ]
    assert all(p.predicted is not None for p in points)
    fit = state.fits[-1]
    assert fit.support_ids == tuple(p.id for p in design)
    assert fit.coefficients.shape == (len(design) + 3,)  # c_j and the linear tail
    assert fit.argmax["x"] == pytest.approx(0.7, abs=0.3)
    again = policy.Study(state, exp).propose()  # the first batch is pending: never proposed twice
    assert {exp.space.key(p.params) for p in again}.isdisjoint(
        {exp.space.key(p.params) for p in points}
    )


def test_dry_run_stores_nothing() -> None:
    exp = experiment()
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    generation_points, fits = len(state.points), len(state.fits)
    proposals = policy.Study(state, exp).propose(n=2, dry_run=True)
    assert [p.origin for p in proposals] == ["incremental", "fill"]
    assert (len(state.points), len(state.fits)) == (generation_points, fits)


def test_max_points_caps_and_then_refuses() -> None:
    exp = experiment(max_points=7)
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    state.set_status(state.add_point({"x": 1.5, "y": 9}, "manual", 1).id, S.CANCELLED)
    assert policy.Study(state, exp).remaining_points() == 2  # a cancelled point costs nothing
    assert len(policy.Study(state, exp).propose(n=5)) == 2
    reason = policy.Study(state, exp).budget_reason()
    assert reason.startswith(
        "max_points reached: 7 trainings of 7; raise it with `splinenas run --max-points N`"
    )
    with pytest.raises(policy.StudyError, match="no more points.*max_points reached"):
        policy.Study(state, exp).propose()


def test_gpu_hour_and_wall_time_budgets() -> None:
    exp = experiment(max_gpu_hours=100.0, max_wall_hours=2.0)
    state = new_state(exp)
    points = policy.Study(state, exp).initial_batch()
    assert policy.Study(state, exp).budget_reason(now=state.created + 3600) is None
    assert "max_wall_hours reached" in policy.Study(state, exp).budget_reason(
        now=state.created + 7300
    )
    state.update_point(points[0].id, gpu_hours=60.0)
    state.update_point(points[1].id, gpu_hours=45.0)
    assert (
        policy.Study(state, exp).budget_reason()
        == "max_gpu_hours reached: 105.0 of 100 GPU-hours used"
    )


def test_loop_converges_when_a_prediction_comes_true() -> None:
    exp = experiment(tolerance=0.05, stop="paper")
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    assert not policy.Study(state, exp).converged()
    for _ in range(10):
        if policy.Study(state, exp).converged():
            break
        measure(state, policy.Study(state, exp).propose())
    assert policy.Study(state, exp).converged()
    best = policy.Study(state, exp).best()
    assert best.value == max(p.value for p in state.points)
    assert best.params["x"] == pytest.approx(0.7, abs=0.2)
    value, summary = policy.Study(state, exp).predict(best.params)
    assert value == pytest.approx(best.value, abs=1e-9)  # interpolation at a support point
    assert summary.n_support == len(state.points)


def test_manual_points_are_not_predictions() -> None:
    exp = experiment(tolerance=10.0)
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    policy.add_manual(state, {"x": 0.5, "y": -3}, value=9.9)
    assert not policy.Study(state, exp).converged()  # no prediction was made for it


def test_best_point_respects_the_goal() -> None:
    exp = experiment(goal="minimize")
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    assert policy.Study(state, exp).best().value == min(p.value for p in state.points)
    assert policy.Study(new_state(exp), exp).best() is None


def test_add_manual_records_on_an_existing_point() -> None:
    exp = experiment()
    state = new_state(exp)
    design = policy.Study(state, exp).initial_batch()
    point, created = policy.add_manual(state, {"x": 2.0, "y": 20.2}, value=3.0)
    assert (point.id, created, point.value) == (design[0].id, False, 3.0)
    with pytest.raises(StateError, match="already measured.*--replace"):
        policy.add_manual(state, {"x": 2, "y": 20}, value=4.0)
    assert policy.add_manual(state, {"x": 2, "y": 20}, value=4.0, replace=True)[0].value == 4.0
    new, created = policy.add_manual(state, {"x": 0.1, "y": 1})
    assert created and (new.origin, new.status, new.batch) == ("manual", S.PENDING, 1)


def test_predict_needs_a_fit() -> None:
    exp = experiment()
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch()[:3])
    # the first three design points lie on the diagonal: they do not determine a plane
    with pytest.raises(policy.StudyError, match="3 measured point.* 2 affinely independent"):
        policy.Study(state, exp).predict({"x": 0.0, "y": 0})


def test_a_study_builds_its_optimizer_once_per_state_change() -> None:
    exp = experiment()
    state = new_state(exp)
    study = policy.Study(state, exp)
    measure(state, study.initial_batch())
    first = study.optimizer
    assert study.converged() is False and study.best() is not None
    assert study.optimizer is first  # the questions of one cycle share one optimizer
    state.add_point({"x": 0.1, "y": 1}, "manual", state.next_batch())
    assert study.optimizer is not first  # a changed state is never answered from a stale one


def test_fills_met_exactly_count_as_agreements_for_readers_and_the_controller() -> None:
    exp = experiment(batch_size=4)
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    points = policy.Study(state, exp).propose()
    assert [p.origin for p in points] == ["incremental", "fill", "fill", "fill"]
    for point in points:
        state.record(point.id, point.predicted)
    study = policy.Study(state, exp)
    assert study.stop_evidence(exact=True).gaps == (0.0, 0.0, 0.0)
    assert study.stop_evidence(exact=False).gaps == (0.0, 0.0, 0.0)
    state.record(state.add_point({"x": 0.123, "y": 7}, "fill", state.next_batch(), 9.0).id, 1.0)
    assert policy.Study(state, exp).stop_evidence().gaps[-1] == pytest.approx(8.0)


def test_readers_check_the_best_s_neighbours_with_the_stored_fit() -> None:
    exp = experiment()
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    controller = policy.Study(state, exp)
    controller.store_fit()
    stored = state.fits[-1].local_loo
    assert stored == controller.optimizer.local_loo_error() and math.isfinite(stored)
    assert policy._stored_local_error(state) == stored
    state.fits[-1] = dataclasses.replace(state.fits[-1], local_loo=math.nan)  # an older file
    assert math.isnan(policy._stored_local_error(state))
    state.add_point({"x": 0.1, "y": 1}, "manual", state.next_batch())
    state.record(state.points[-1].id, 1.0)
    assert policy._stored_local_error(state) == math.inf  # the fit is not on every measured point


def test_a_noisy_fit_stores_its_smoothed_best_and_readers_use_it_without_fitting() -> None:
    exp = experiment(noise="auto")
    state = new_state(exp)
    measure(state, policy.Study(state, exp).initial_batch())
    policy.Study(state, exp).propose()
    fit = state.fits[-1]
    assert fit.best_id == policy.Study(state, exp).best().id
    reader = policy.Study(state, exp)
    assert reader.best(exact=False).id == fit.best_id
    assert reader._optimizer is None  # answered from the stored fit
    quiet = new_state(experiment())
    measure(quiet, policy.Study(quiet, experiment()).initial_batch())
    policy.Study(quiet, experiment()).propose()
    assert quiet.fits[-1].best_id == -1  # no noise: the best measurement is the best


def test_a_space_filling_design_with_two_failures_is_topped_up_not_stopped() -> None:
    exp = experiment(design="space-filling", batch_size=2)
    state = new_state(exp)
    design = policy.Study(state, exp).initial_batch()
    assert len(design) == 4  # d+2: one to spare for a spline in 2 dims
    measure(state, design[2:])
    for point in design[:2]:
        state.set_status(point.id, S.INFEASIBLE, reason="out of GPU memory")
    study = policy.Study(state, exp)
    assert study.fit_summary() is None
    more = study.propose()
    assert [p.origin for p in more] == ["initial", "initial"] and not state.fits
    measure(state, more)
    assert policy.Study(state, exp).propose()[0].origin == "incremental"
