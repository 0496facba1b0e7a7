"""The climb on a stall (:mod:`nas.search.climb`): the best's coarse neighbours, polled.

A two-dimensional search over a depth of 1-6 blocks (a coarse axis) and a
width of 16-256 (not coarse) whose best, depth 4 and width 120, was measured
first and never beaten in the fourteen measurements since: the stop rule's
window (12) has passed, and neither depth 3 nor depth 5 at that width was
measured. The climb polls them before anything else, and the search does not
stop while they are due or out.
"""

from __future__ import annotations

import math

import pytest
from experiment_support import experiment_toml, run

from nas.config import parse_experiment
from nas.control import policy
from nas.record.state import POLL, State
from nas.record.store import load_state, write_state
from nas.search.climb import (
    climb_due,
    climb_polls,
    coarse_axes,
    face_steps,
    one_level_neighbours,
    outside_starts,
    polls_due,
)
from nas.search.optimizer import SplineOptimizer, counts_as_agreement
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace
from nas.search.stopping import stall_needed

SPACE = SearchSpace([Dim("depth", "int", 1, 6), Dim("width", "int", 16, 256)])
BEST = {"depth": 4, "width": 120}
#: Told after the best, none better, none a depth neighbour of it at its width.
LATER = [
    (depth, width)
    for depth, width in zip(
        [1, 6, 2, 6, 1, 2, 6, 1, 2, 6, 1, 2, 6, 1],
        [16, 60, 200, 256, 180, 90, 30, 240, 150, 70, 110, 220, 40, 130],
        strict=True,
    )
]


def value(depth: int, width: int) -> float:
    """A maximum 10 at the best; depth 3 and 5 at its width measure 9."""
    return 10.0 - (depth - 4) ** 2 - ((width - 120) / 40) ** 2


def below(params: dict) -> float:
    """A design point's value: far below the best."""
    return value(**params) - 5.0


def later(design: list[dict]) -> list[dict]:
    """:data:`LATER` less any point of ``design``."""
    points = [{"depth": depth, "width": width} for depth, width in LATER]
    return [p for p in points if p not in design]


def stalled(**settings: object) -> SplineOptimizer:
    """The search after its design, its best, then :func:`later`, all proposed from a fit (the
    last three agreeing with their predictions, the others 2 off)."""
    opt = SplineOptimizer(SPACE, SearchSettings(seed=0, **settings))
    design = opt.initial_design()
    for params in design:
        opt.tell(params, below(params))
    opt.tell(BEST, value(**BEST), predicted=value(**BEST) - 2.0)
    rest = later(design)
    for i, params in enumerate(rest):
        measured = value(**params)
        opt.tell(params, measured, predicted=measured + (0.0 if i >= len(rest) - 3 else 2.0))
    return opt


def test_coarse_axes_are_the_integer_axes_of_at_most_eight_levels() -> None:
    space = SearchSpace(
        [
            Dim("blocks", "int", 1, 6),
            Dim("stages", "int", 1, 8),
            Dim("groups", "int", 1, 9),
            Dim("lr", "float", 0.01, 1.0, log=True),
            Dim("block", "categorical", choices=("basic", "bottleneck")),
        ]
    )
    assert coarse_axes(space) == ["blocks", "stages"]
    point = {"blocks": 1, "stages": 4, "groups": 2, "lr": 0.1, "block": "basic"}
    moved = one_level_neighbours(space, point, coarse_axes(space))
    # down then up, axis by axis; blocks cannot go below its low
    assert [(p["blocks"], p["stages"]) for p in moved] == [(2, 4), (1, 3), (1, 5)]
    assert all(p["groups"] == 2 and p["lr"] == 0.1 and p["block"] == "basic" for p in moved)


def test_a_best_on_a_face_of_a_fine_axis_is_polled_one_eighth_inward() -> None:
    space = SearchSpace(
        [
            Dim("blocks", "int", 1, 6),
            Dim("width", "int", 16, 256),
            Dim("lr", "float", 0.01, 1.0, log=True),
            Dim("block", "categorical", choices=("basic", "bottleneck")),
        ]
    )
    corner = {"blocks": 6, "width": 256, "lr": 0.01, "block": "bottleneck"}
    steps = face_steps(space, corner)
    # 256 - 240 / 8; lr by an eighth of its log range; the coarse axis is the climb's own
    assert steps == [{**corner, "width": 226}, {**corner, "lr": pytest.approx(0.01 * 100**0.125)}]
    assert face_steps(space, {**corner, "width": 100, "lr": 0.1}) == []  # inside: no poll
    low_wide = {**corner, "width": 16, "lr": 1.0}
    assert face_steps(space, low_wide) == [
        {**low_wide, "width": 46},
        {**low_wide, "lr": pytest.approx(100**-0.125)},
    ]
    # after the coarse neighbours, and like them left out once known
    best = {"depth": 4, "width": 256}
    assert polls_due(SPACE, best, set(), None, 0.0) == [
        {"depth": 3, "width": 256},
        {"depth": 5, "width": 256},
        {"depth": 4, "width": 226},
    ]
    assert polls_due(SPACE, best, {SPACE.key({"depth": 4, "width": 226})}, None, 0.0)[-1] == {
        "depth": 5,
        "width": 256,
    }


def test_known_refused_and_too_close_neighbours_are_not_polled() -> None:
    known = {SPACE.key({"depth": 3, "width": 120})}
    assert polls_due(SPACE, BEST, known, None, 0.0) == [{"depth": 5, "width": 120}]
    assert polls_due(SPACE, BEST, set(), lambda p: p["depth"] < 5, 0.0) == [
        {"depth": 3, "width": 120}
    ]
    assert polls_due(SPACE, BEST, set(), None, 0.25) == []  # one level is 0.2 of the box


def test_a_climb_is_due_after_a_stall_and_a_window_after_the_last_poll() -> None:
    window = 12
    assert not climb_due([False] * 20, False, window - 1, window)
    assert climb_due([False] * 20, False, window, window)
    recent = [False] * 8 + [True] + [False] * (window - 1)
    assert not climb_due(recent, False, 30, window)  # the last climb was 11 measurements ago
    assert climb_due([*recent, False], False, 30, window)
    assert climb_due([False, True], False, 0, window)  # under way: the last told was a poll
    assert climb_due([False] * 20, False, 0, window, pending=1)  # under way: a poll is out
    assert climb_due([True, False], True, 0, window)  # goes on from a poll that beat the best
    # the first waits a window after the design: its points are no steps of the search
    design = [False] * 10 + [True] * (window - 1)
    assert not climb_due([False] * len(design), False, 20, window, proposed=design)
    assert climb_due([False] * (len(design) + 1), False, 20, window, proposed=[*design, True])
    assert (
        climb_polls(SPACE, BEST, [False] * 15, False, 14, set()) == polls_due(SPACE, BEST, set())
        and stall_needed(SPACE.d) == window
    )


def test_the_first_climb_waits_a_window_after_the_design() -> None:
    """A best from the design (here told first of it) that the search's own proposals have not
    beaten starts no climb until a window of them was told: the design does not climb."""
    opt = SplineOptimizer(SPACE, SearchSettings(seed=0))
    design = [BEST, *(p for p in opt.initial_design() if p != BEST)]
    for params in design:
        opt.tell(params, value(**params) if params == BEST else below(params))
    window = stall_needed(SPACE.d)
    rest = later(design)[:window]
    for params in rest[:-1]:
        opt.tell(params, value(**params), predicted=value(**params) + 2.0)
    # stalled for longer than the window, but only window - 1 of the steps were the search's own
    assert opt.stop_evidence().stall >= window + len(design) - 2 and opt.due_polls() == []
    opt.tell(rest[-1], value(**rest[-1]), predicted=value(**rest[-1]) + 2.0)
    assert opt.due_polls() == polls_due(SPACE, BEST, {SPACE.key(p) for p in [*design, *rest]})


def test_only_the_design_and_an_added_new_best_restart_the_wait() -> None:
    """Points from outside the search restart a climb's wait while they open it (the
    design, imports) or raise the best; an added one below the best does not."""
    proposed = [False, False, False, True, True, False, True, False, True]
    values = [1.0, 3.0, 2.0, 2.5, 2.9, 2.0, 3.1, 3.5, 3.4]
    # 0-2: the design; 5: added below the best (3.0); 7: added above it (3.5 > 3.1)
    assert outside_starts(proposed, values) == [0, 1, 2, 7]
    assert outside_starts(proposed) == [0, 1, 2, 5, 7]  # without values: every one
    assert outside_starts([False, False]) == [0, 1] == outside_starts([False, False], [2.0, 1.0])
    window = 12
    told = [False] * 4 + [True] * window  # a design of 4, then the window of own steps
    later_low = [*told[:10], False, *told[10:]]  # one added below the best among them
    values = [5.0, 1.0, 1.0, 1.0, *[2.0] * window]
    low = [*values[:10], 0.0, *values[10:]]
    high = [*values[:10], 9.0, *values[10:]]
    assert climb_due([False] * len(later_low), False, 30, window, 0, later_low, low)
    assert not climb_due([False] * len(later_low), False, 30, window, 0, later_low, high)
    assert not climb_due([False] * len(later_low), False, 30, window, 0, later_low)


def test_an_added_measurement_below_the_best_does_not_delay_the_climb() -> None:
    """The optimizer after a stall: a measurement told without a prediction (``add``) that
    is not the best leaves the climb due; one that beats the best waits a window."""
    opt = stalled()
    assert opt.due_polls()
    opt.tell({"depth": 1, "width": 250}, 0.0)  # added by hand, far below the best
    assert opt.due_polls() == polls_due(SPACE, BEST, {SPACE.key(r.params) for r in opt.history})
    opt.tell({"depth": 2, "width": 121}, 11.0)  # added by hand, a new best
    assert opt.due_polls() == []


def test_a_stalled_search_polls_the_best_neighbours_before_it_may_stop() -> None:
    opt = stalled()
    evidence = opt.stop_evidence()
    assert evidence.stall == len(later(opt.initial_design())) >= evidence.stall_needed
    assert not evidence.stop and not evidence.explore and "climbing" in evidence.reason
    (poll,) = opt.suggest()
    assert poll.origin == "poll" and poll.params == {"depth": 3, "width": 120}
    assert poll.predicted is not None
    opt.tell(poll.params, value(**poll.params))  # 9: worse than the best
    assert not counts_as_agreement(opt.history[-1])  # chosen for its place, not its value
    (second,) = opt.suggest()
    assert second.origin == "poll" and second.params == {"depth": 5, "width": 120}
    opt.tell(second.params, value(**second.params))
    assert opt.due_polls() == []  # every coarse neighbour of the best is measured
    assert "climbing" not in opt.stop_evidence().reason
    assert all(p.origin != "poll" for p in opt.suggest())


def test_a_stalled_best_on_a_width_face_is_polled_inward_after_its_depths() -> None:
    """The best at the width's cap (256), a stall since: the climb polls depth 3 and 5 there,
    then the width one eighth of its range inward (226), and holds the stop until all are told."""
    opt = SplineOptimizer(SPACE, SearchSettings(seed=0))
    design = opt.initial_design()
    capped = {"depth": 4, "width": 256}
    for params in design:
        opt.tell(params, below(params) - 10.0)
    opt.tell(capped, 12.0, predicted=10.0)
    for params in later([*design, capped]):
        opt.tell(params, value(**params) - 5.0, predicted=value(**params) - 5.0)
    assert opt.due_polls() == [
        {"depth": 3, "width": 256},
        {"depth": 5, "width": 256},
        {"depth": 4, "width": 226},
    ]
    for poll in opt.due_polls():
        assert not opt.stop_evidence().stop
        (proposal,) = opt.suggest()
        assert proposal.origin == "poll" and proposal.params == poll
        opt.tell(poll, 11.0)
    assert opt.due_polls() == [] and "climbing" not in opt.stop_evidence().reason


def test_a_poll_that_beats_the_best_is_climbed_from() -> None:
    opt = stalled(batch_size=4)
    batch = opt.suggest()
    # the batch is the polls alone: the climb goes on from whichever beats the best
    assert [(p.origin, p.params["depth"]) for p in batch] == [("poll", 3), ("poll", 5)]
    opt.tell(batch[0].params, 10.4)  # depth 3 beats the best
    opt.tell(batch[1].params, 9.0)
    assert opt.best[0] == {"depth": 3, "width": 120}
    assert [p["depth"] for p in opt.due_polls()] == [2]  # depth 4 is known


def test_a_pending_poll_holds_the_stop_and_survives_a_rebuild() -> None:
    opt = stalled(batch_size=2)
    polls = opt.suggest()
    rebuilt = SplineOptimizer(SPACE, SearchSettings(seed=0, batch_size=2))
    for record in opt.history:
        rebuilt.tell(record.params, record.value, predicted=record.predicted)
    rebuilt.mark_pending(polls[0].params, origin="poll")  # one poll out, one lost in a crash
    assert rebuilt.due_polls() == [polls[1].params]
    assert not rebuilt.stop_evidence().stop and "some pending" in rebuilt.stop_evidence().reason
    rebuilt.tell(polls[1].params, 9.0)
    assert rebuilt.due_polls() == []  # the remaining neighbour is pending
    assert not rebuilt.stop_evidence().stop and "climbing" in rebuilt.stop_evidence().reason


def test_climb_off_never_polls() -> None:
    opt = stalled(climb="off")
    assert opt.due_polls() == []
    assert all(p.origin != "poll" for p in opt.suggest())
    assert "climbing" not in opt.stop_evidence().reason
    assert SearchSettings(strategy="paper").climb_kind == "off"
    assert SearchSettings().climb_kind == "stall"


def climbing_state() -> tuple[State, object]:
    """The stalled search as a state file holds it: the corner design, then the best and the
    rest as the search's own proposals (2 off their predictions)."""
    space = {
        "depth": {"type": "int", "low": 1, "high": 6},
        "width": {"type": "int", "low": 16, "high": 256},
    }
    exp = parse_experiment(experiment_toml("climb", space, tolerance=0.5), "climb.toml")
    state = State(exp.text, exp.space)
    policy.Study(state, exp).initial_batch()
    design = [point.params for point in state.points]
    for point in state.points:
        state.record(point.id, below(point.params))
    for params in [BEST, *later(design)]:
        point = state.add_point(
            params, "incremental", state.next_batch(), predicted=value(**params) - 2.0
        )
        state.record(point.id, value(**params))
    return state, exp


def test_the_controller_records_polls_says_why_and_reads_them_back(tmp_path, capsys) -> None:
    state, exp = climbing_state()
    study = policy.Study(state, exp)
    exact, stored = study.stop_evidence(), study.stop_evidence(exact=False)
    assert not exact.stop and not stored.stop
    assert "climbing" in exact.reason and "climbing" in stored.reason
    (poll,) = study.propose()
    assert poll.origin == POLL and poll.params == {"depth": 3, "width": 120}
    (event,) = [e for e in state.events if e.kind == POLL]
    assert event.point_id == poll.id and "climbing on a stall" in event.message
    path = tmp_path / "climb.h5"
    write_state(state, path)

    loaded = load_state(path)  # a new controller life: nothing but the file
    assert loaded.point(poll.id).origin == POLL
    again = policy.Study(loaded, exp)
    (follow,) = again.propose(dry_run=True)
    assert follow.origin == POLL and follow.params == {"depth": 5, "width": 120}
    assert "some pending" in again.stop_evidence(exact=False).reason
    code, out, _ = run(capsys, "status", "--state", str(path))
    assert code == 0 and "climbing" in out

    loaded.record(poll.id, value(**poll.params))
    after = policy.Study(loaded, exp)
    assert after.optimizer.history[-1].poll and not math.isnan(after.optimizer.history[-1].value)
    assert [p.params for p in after.propose(dry_run=True)] == [{"depth": 5, "width": 120}]


@pytest.mark.parametrize("origin", ["poll", "check"])
def test_polls_and_checks_are_not_agreements_of_the_stored_rule(origin: str) -> None:
    state, exp = climbing_state()
    point = state.add_point({"depth": 3, "width": 120}, origin, state.next_batch(), predicted=9.0)
    state.record(point.id, 9.0)
    stored = policy.Study(state, exp).stop_evidence(exact=False)
    exact = policy.Study(state, exp).stop_evidence()
    # (a)'s gaps are the proposals' before it, each 2 off; the one on the mark is not among them
    assert stored.gaps == exact.gaps and stored.gaps and all(g == 2.0 for g in stored.gaps)


@pytest.mark.parametrize(("measured", "climbing"), [(0.0, True), (11.0, False)])
def test_the_controller_reads_an_added_measurement_as_the_optimizer_does(
    measured: float, climbing: bool
) -> None:
    """A point added by hand (origin ``manual``, no prediction) mid-search: below the best the
    climb stays due for the controller and for the readers of the stored file; as a new best
    it waits a window for both."""
    state, exp = climbing_state()
    point = state.add_point({"depth": 1, "width": 250}, "manual", state.next_batch())
    state.record(point.id, measured)
    study = policy.Study(state, exp)
    exact, stored = study.stop_evidence(), study.stop_evidence(exact=False)
    assert ("climbing" in exact.reason) is climbing
    assert ("climbing" in stored.reason) is climbing
    assert bool(study.optimizer.due_polls()) is climbing
