"""The default stop rule's look away from the best (condition (e)): checks before a stop.

A one-dimensional search settled on a local maximum at x = 20 meets
conditions (a)-(d): its last proposals agreed with the spline, the best
has not risen for a long time, the spline promises nothing and predicts
the best's neighbours well. With a second, higher bump at x = 85 that no
measurement has touched, (a)-(d) alone stop in the wrong basin; the
checks find the bump and the search stops on it.
"""

from __future__ import annotations

import math
import warnings

import pytest
from experiment_support import experiment_toml, run

from nas.config import parse_experiment
from nas.control import policy
from nas.record.state import PointStatus, State
from nas.record.store import StateStore, load_state, write_state
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace
from nas.search.stopping import CHECKS_NEEDED, check_progress, decide

S = PointStatus
TOLERANCE = 0.05
#: The settled search: the best first, the rest of the corner design, then a dense scan of
#: the first basin that never reaches the second.
SETTLED = [20, 100, 0, 50, *(x for x in range(4, 57, 4) if x not in (20, 52))]


def bump(x: float, second: bool = True) -> float:
    """A wide maximum 1.0 at x = 20 and, with ``second``, a higher narrow one (2.36) at x = 84."""
    value = 1.0 - ((x - 20) / 30) ** 2
    return value + (6.0 * math.exp(-(((x - 85) / 8) ** 2)) if second else 0.0)


def settled_optimizer(second: bool = True, batch_size: int = 1) -> SplineOptimizer:
    """The search at the moment (a)-(d) first hold; the last three proposals agreed."""
    space = SearchSpace([Dim("x", "int", 0, 100)])
    settings = SearchSettings(tolerance=TOLERANCE, seed=0, batch_size=batch_size, design="corners")
    opt = SplineOptimizer(space, settings)
    assert sorted(p["x"] for p in opt.initial_design()) == [0, 50, 100]
    for i, x in enumerate(SETTLED):
        value = bump(x, second)
        opt.tell({"x": x}, value, predicted=value if i >= len(SETTLED) - 3 else None)
    return opt


def old_rule(opt: SplineOptimizer) -> bool:
    """Conditions (a)-(d) alone: the rule before the checks."""
    measured = [r for r in opt.history if math.isfinite(r.value)]
    return decide(
        "default",
        [r.value for r in measured],
        [(r.value, r.predicted) for r in measured if r.predicted is not None and not r.check],
        1,
        TOLERANCE,
        gain=opt.predicted_gain,
        local_error=opt.local_loo_error,
    ).stop


def search(opt: SplineOptimizer, second: bool, budget: int = 60) -> list:
    """Suggest and measure until the rule stops; every proposal made, in order."""
    made = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        while not opt.converged and len(made) < budget:
            for proposal in opt.suggest():
                made.append(proposal)
                opt.tell(proposal.params, bump(proposal.params["x"], second))
    return made


def test_the_old_rule_stops_in_the_wrong_basin_the_checks_find_the_other() -> None:
    opt = settled_optimizer()
    assert old_rule(opt)  # (a)-(d) hold at x = 20, regret 1.36 of the range
    evidence = opt.stop_evidence()
    assert evidence.explore and not evidence.stop
    assert "checking convergence away from the best" in evidence.reason
    made = search(opt, second=True)
    assert made[0].origin == "check" and made[0].params["x"] >= 60  # far from x = 20
    first = made[0]
    assert bump(first.params["x"]) - first.predicted > TOLERANCE  # the spline underestimated it
    assert opt.converged
    assert opt.best == ({"x": 84}, pytest.approx(bump(84)))  # the grid's true maximum
    assert sum(p.origin == "check" for p in made) >= 2
    # a check that surprised the spline is followed by one near it, not far away again
    assert made[1].origin == "check" and abs(made[1].params["x"] - first.params["x"]) <= 10


def test_without_a_second_basin_the_checks_confirm_the_stop() -> None:
    opt = settled_optimizer(second=False)
    made = search(opt, second=False)
    assert opt.converged and opt.best == ({"x": 20}, 1.0)
    assert [p.origin for p in made] == ["check"] * len(made)
    assert CHECKS_NEEDED <= len(made) <= CHECKS_NEEDED + 2
    # checks are chosen for their distance: they never count as agreements of (a)
    assert opt.stop_evidence().gaps == (0.0, 0.0, 0.0)
    assert "a point away from the best was measured" in opt.stop_evidence().reason


def test_a_batch_carries_the_checks_still_needed_in_place_of_its_fills() -> None:
    opt = settled_optimizer(batch_size=4)
    batch = opt.suggest()
    assert [p.origin for p in batch] == ["incremental", "check", "check", "check"]
    assert CHECKS_NEEDED == 3 and len({p.params["x"] for p in batch}) == 4
    assert all(p.predicted is not None for p in batch)
    far = batch[1].params["x"]
    assert far >= 60  # the first check is the far one, as with one slot
    assert [p.origin for p in settled_optimizer(batch_size=2).suggest()] == ["incremental", "check"]
    for check in batch[1:]:
        opt.mark_pending(check.params, check=True)  # in flight: no more checks
    assert [p.origin for p in opt.suggest(2)] == ["incremental", "fill"]


def test_checks_of_one_batch_cannot_end_each_others_surprise() -> None:
    tol = 0.1
    surprise, right = (0, 1.0, 0.5), (1, 0.5, 0.52)
    # one at a time: a check predicted right after a surprise was sought near it, and ends it
    assert check_progress([surprise, right, (2, 0.5, 0.5)], tol) == (2, False)
    # chosen in one batch, before the surprise was known: they pass, the surprise stays open
    together = [(*surprise, 7), (*right, 7), (2, 0.5, 0.5, 7)]
    assert check_progress(together, tol) == (2, True)
    assert check_progress([*together, (3, 0.6, 0.55, 8)], tol) == (3, False)  # the next batch's
    assert check_progress([*together, (3, 0.9, 0.55, 8)], tol) == (2, True)  # still surprising
    values = [1.0] + [0.5] * 15  # (a)-(d) hold: a long stall, agreeing proposals
    late = [(13, 0.9, 0.4, 7), (14, 0.5, 0.52, 7), (15, 0.5, 0.5, 7)]
    evidence = decide(
        "default", values, [(0.5, 0.5)] * 3, 1, tol, gain=lambda: 0.0,
        local_error=lambda: 0.0, checks=late,
    )  # fmt: skip
    assert evidence.explore and not evidence.stop
    assert "2 of 3 checks passed; a check was measured 0.5 better than predicted" in evidence.reason


def test_a_batch_of_checks_finds_the_other_basin() -> None:
    opt = settled_optimizer(batch_size=4)
    batch = opt.suggest()
    for proposal in batch:  # the far check finds the second bump, far above its prediction
        opt.tell(proposal.params, bump(proposal.params["x"]))
    evidence = opt.stop_evidence()
    assert not evidence.stop
    made = search(opt, second=True)
    assert opt.converged and opt.best == ({"x": 84}, pytest.approx(bump(84)))
    assert len(made) <= 60


def experiment(**settings: object):
    space = {"x": {"type": "int", "low": 0, "high": 100}}
    toml = experiment_toml("bumps", space, tolerance=TOLERANCE, design="corners", **settings)
    return parse_experiment(toml, "bumps.toml")


def settled_state(exp) -> State:
    """The settled search as a state file holds it: design, scans, agreeing proposals."""
    state = State(exp.text, exp.space)
    policy.Study(state, exp).initial_batch()
    for point in state.points:
        state.record(point.id, bump(point.params["x"]))
    rest = [x for x in SETTLED if x not in (0, 50, 100)]
    for i, x in enumerate(rest):
        agreed = i >= len(rest) - 3
        origin = "incremental" if agreed else "manual"
        point = state.add_point({"x": x}, origin, state.next_batch(), bump(x) if agreed else None)
        state.record(point.id, bump(x))
    return state


def test_a_check_survives_a_restart_and_is_not_proposed_twice(tmp_path, capsys) -> None:
    exp = experiment()
    state = settled_state(exp)
    study = policy.Study(state, exp)
    assert not study.converged() and study.stop_evidence().explore
    (check,) = study.propose()
    assert check.origin == "check" and check.predicted is not None
    (event,) = [e for e in state.events if e.kind == "check"]
    assert event.point_id == check.id
    assert "checking convergence away from the best" in event.message
    path = tmp_path / "bumps.h5"
    write_state(state, path)

    loaded = load_state(path)  # a new controller life: nothing but the file
    assert [p.origin for p in loaded.points][-1] == "check"
    again = policy.Study(loaded, exp)
    assert [p.origin for p in again.propose(dry_run=True)] == ["incremental"]
    code, out, _ = run(capsys, "status", "--state", str(path))
    assert code == 0 and "checking convergence away from the best" in out
    code, out, _ = run(capsys, "show", "--state", str(path), str(check.id))
    assert code == 0 and "checking convergence away from the best" in out

    with StateStore.open(path) as store:  # the check's result comes in
        store.state.record(check.id, bump(check.params["x"]))  # far above its prediction
        store.commit()
    after = policy.Study(StateStore.read(path), exp)
    exact, stored = after.stop_evidence(), after.stop_evidence(exact=False)
    assert not exact.stop and not stored.stop
    assert exact.away == pytest.approx(stored.away) and exact.away > TOLERANCE
    (follow,) = after.propose()
    assert follow.origin == "check"
    assert abs(follow.params["x"] - check.params["x"]) <= 10  # around the surprise


def test_a_check_whose_training_failed_is_replaced(tmp_path) -> None:
    exp = experiment()
    state = settled_state(exp)
    (check,) = policy.Study(state, exp).propose()
    state.set_status(check.id, S.SUBMITTING)
    state.set_status(check.id, S.FAILED, reason="node failure")  # waits for a retry
    state.set_status(check.id, S.SUBMITTING)  # retried: still the pending check
    assert [p.origin for p in policy.Study(state, exp).propose(dry_run=True)] == ["incremental"]
    state.set_status(check.id, S.CANCELLED, reason="given up")
    (replacement,) = policy.Study(state, exp).propose()
    assert replacement.origin == "check" and replacement.params != check.params


def test_the_paper_rule_makes_no_check() -> None:
    exp = experiment(stop="paper")
    state = settled_state(exp)
    (proposal,) = policy.Study(state, exp).propose()
    assert proposal.origin == "incremental"


def test_the_controller_keeps_a_batch_of_checks_together_across_a_restart(tmp_path) -> None:
    exp = experiment(batch_size=4)
    state = settled_state(exp)
    batch = policy.Study(state, exp).propose()
    assert [p.origin for p in batch] == ["incremental", "check", "check", "check"]
    assert len({p.batch for p in batch}) == 1
    for point in batch:  # a check lands on the second bump's flank, far above its prediction
        state.record(point.id, bump(point.params["x"]))
    path = tmp_path / "bumps.h5"
    write_state(state, path)
    after = policy.Study(load_state(path), exp)
    after.store_fit()  # readers decide from the stored points and this fit, as status does
    exact, stored = after.stop_evidence(), after.stop_evidence(exact=False)
    assert not exact.stop and not stored.stop
    assert "1 of 3 checks passed; a check was measured" in exact.reason
    assert stored.reason == exact.reason
    surprising = max(batch[1:], key=lambda p: bump(p.params["x"]) - p.predicted)
    follow = [p for p in after.propose(dry_run=True) if p.origin == "check"]
    assert len(follow) == 1  # one look around the surprise: the next depends on it
    assert abs(follow[0].params["x"] - surprising.params["x"]) <= 10
