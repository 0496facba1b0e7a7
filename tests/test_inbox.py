"""The inbox: requests validated, queued in order, applied idempotently, bad ones set aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.config import parse_experiment
from nas.control import inbox, policy
from nas.record.state import PointStatus, State

TOML = """
[experiment]
name = "toy"
min_distance = 0.01
design = "corners"
[[space]]
name = "x"
type = "int"
low = 0
high = 8
[[space]]
name = "y"
type = "float"
low = 0.0
high = 1.0
"""


@pytest.fixture
def state() -> State:
    """The toy's initial design: points 0-4, all pending."""
    experiment = parse_experiment(TOML, "toy.toml")
    state = State(experiment.text, experiment.space)
    policy.Study(state, experiment).initial_batch()
    return state


def fail(state: State, point_id: int, reason: str = "exit code 1") -> None:
    state.update_point(point_id, attempts=3, job_id="42", job_name=f"toy-p{point_id}-a3s0")
    for status in (PointStatus.SUBMITTING, PointStatus.SUBMITTED):
        state.set_status(point_id, status)
    state.set_status(point_id, PointStatus.FAILED, reason)


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        ([1, 2], "JSON object"),
        ({"action": "delete", "ids": [1]}, "not one of"),
        ({"action": "rerun"}, "missing key 'ids'"),
        ({"action": "rerun", "ids": []}, "non-empty list"),
        ({"action": "rerun", "ids": [True]}, "not a non-negative integer"),
        ({"action": "cancel", "ids": [-1]}, "not a non-negative integer"),
        ({"action": "rerun", "ids": [1], "bounds": {}}, "unknown keys"),
        ({"action": "expand", "bounds": {"x": [0]}}, r"x must be \[low, high\]"),
        ({"action": "expand", "bounds": {"x": [None, None]}}, "changes neither bound"),
        ({"action": "expand", "bounds": {"x": [None, "9"]}}, "not a number or null"),
        ({"action": "refine", "box": {"x": [None, 4]}}, "is not a number"),
        ({"action": "rerun", "ids": [1], "posted": "now"}, "'posted' a number"),
    ],
)
def test_malformed_requests_are_named(request_: object, match: str) -> None:
    with pytest.raises(inbox.RequestError, match=match):
        inbox.validate(request_)


def test_post_then_drain_keeps_the_order_and_fills_in_who(tmp_path: Path) -> None:
    first = inbox.post(tmp_path, {"action": "rerun", "ids": [3]})
    second = inbox.post(tmp_path, {"action": "cancel", "ids": [1, 1, 2]})
    assert first.parent == tmp_path / "inbox" and first.name < second.name
    drained = inbox.drain(tmp_path)
    assert [path for path, _ in drained] == [first, second]
    assert drained[1][1]["ids"] == [1, 2]
    assert "@" in drained[0][1]["by"] and drained[0][1]["posted"] > 0
    assert not list((tmp_path / "inbox").glob(".*"))  # no temporary files left


def test_post_refuses_a_malformed_request_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(inbox.RequestError):
        inbox.post(tmp_path, {"action": "rerun", "ids": "all"})
    assert not list((tmp_path / "inbox").glob("*.json"))


def test_malformed_and_unreadable_files_are_set_aside_with_a_reason(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "1.json").write_text('{"action": "rerun", "ids": [-4]}')
    (folder / "2.json").write_text("{not json")
    good = inbox.post(tmp_path, {"action": "rerun", "ids": [0]})
    assert [path for path, _ in inbox.drain(tmp_path)] == [good]
    rejected = folder / "rejected"
    assert sorted(p.name for p in rejected.glob("*.json")) == ["1.json", "2.json"]
    assert "not a non-negative integer" in (rejected / "1.json.reason.txt").read_text()
    assert "not valid JSON" in (rejected / "2.json.reason.txt").read_text()


def test_rerun_resets_a_failed_point_and_applying_it_again_changes_nothing(state: State) -> None:
    fail(state, 2, "exit code 1; out of disk")
    request = {"action": "rerun", "ids": [2], "by": "ada@login1"}
    message = inbox.apply(state, request)
    point = state.point(2)
    assert point.status is PointStatus.PENDING
    assert (point.attempts, point.job_id, point.job_name) == (0, "", "")
    assert point.extra["reruns"] == 1
    assert "was failed after 3 attempts, job 42: exit code 1; out of disk" in message
    assert "rerun by ada@login1" in state.events[-1].message
    events = len(state.events)
    assert inbox.apply(state, request) == "point 2: already pending"
    assert state.point(2).extra["reruns"] == 1 and len(state.events) == events


def test_refusals_are_outcomes_not_exceptions(state: State) -> None:
    state.record(1, 50.0)
    outcomes = inbox.execute(state, {"action": "rerun", "ids": [1, 99]})
    assert [(o.point_id, o.ok) for o in outcomes] == [(1, False), (99, False)]
    assert "only failed, infeasible or cancelled" in outcomes[0].message
    outcomes = inbox.execute(state, {"action": "expand", "bounds": {"depth": [None, 3]}})
    assert not outcomes[0].ok and "unknown dimension 'depth'" in outcomes[0].message


def test_cancel_of_a_submitted_point_needs_the_scheduler(state: State) -> None:
    state.set_status(0, PointStatus.SUBMITTING)
    state.update_point(0, job_id="17")
    state.set_status(0, PointStatus.SUBMITTED)
    [outcome] = inbox.execute(state, {"action": "cancel", "ids": [0]}, scheduler=None)
    assert not outcome.ok and "needs the scheduler" in outcome.message
    assert state.point(0).status is PointStatus.SUBMITTED
    [outcome] = inbox.execute(state, {"action": "cancel", "ids": [3]})  # pending: no job
    assert outcome.ok and state.point(3).status is PointStatus.CANCELLED
    assert inbox.apply(state, {"action": "cancel", "ids": [3]}) == "point 3: already cancelled"


def test_expand_adds_the_widened_design_once(state: State) -> None:
    for point in state.points:
        state.record(point.id, 10.0 + point.id)
    before = {p.id: p.params for p in state.points}
    outcomes = inbox.execute(state, {"action": "expand", "bounds": {"x": [None, 16]}})
    added = [state.point(o.point_id) for o in outcomes if o.changed and o.point_id is not None]
    assert state.space.numeric[0].high == 16
    assert sorted((p.params["x"], p.params["y"]) for p in added) == [(8, 0.5), (16, 0.0), (16, 1.0)]
    assert {p.origin for p in added} == {"expand"} and len({p.batch for p in added}) == 1
    assert {p.id: p.params for p in state.points if p.id in before} == before
    assert state.coords()[state.point(0).id][0] == pytest.approx(0.5)  # (8, 1.0) moved inward
    count = len(state.points)
    again = inbox.execute(state, {"action": "expand", "bounds": {"x": [None, 16]}})
    assert not any(o.changed for o in again) and len(state.points) == count


def test_expand_refuses_to_shrink_and_refine_stays_inside(state: State) -> None:
    [outcome] = inbox.execute(state, {"action": "expand", "bounds": {"x": [2, None]}})
    assert not outcome.ok and "does not contain the current box" in outcome.message
    [outcome] = inbox.execute(state, {"action": "refine", "box": {"x": [4, 12]}})
    assert not outcome.ok and "leaves the box" in outcome.message
    outcomes = inbox.execute(state, {"action": "refine", "box": {"x": [0, 2], "y": [0.0, 0.5]}})
    added = sorted((o.point_id for o in outcomes if o.changed), key=int)
    assert [state.point(i).params for i in added] == [
        {"x": 2, "y": 0.5},
        {"x": 1, "y": 0.25},
        {"x": 0, "y": 0.5},
        {"x": 2, "y": 0.0},
    ]  # (0, 0) is point 1 already
    assert state.space.numeric[0].high == 8


def test_expand_skips_design_points_closer_than_min_distance(state: State) -> None:
    outcomes = inbox.execute(state, {"action": "refine", "box": {"y": [0.0, 0.004]}})
    skipped = [o.message for o in outcomes if "min_distance" in o.message]
    assert skipped and all("skipped" in m for m in skipped)


def test_process_commits_before_deleting_each_request(tmp_path: Path, state: State) -> None:
    fail(state, 4)
    inbox.post(tmp_path, {"action": "rerun", "ids": [4]})
    inbox.post(tmp_path, {"action": "cancel", "ids": [0]})
    seen: list[list[str]] = []

    def commit() -> None:
        seen.append(sorted(p.name for p in (tmp_path / "inbox").glob("*.json")))

    messages = inbox.process(tmp_path, state, commit)
    assert [len(files) for files in seen] == [2, 1]  # each commit while its file still exists
    assert not list((tmp_path / "inbox").glob("*.json"))
    assert messages[0].startswith("point 4: pending again")
    assert state.point(0).status is PointStatus.CANCELLED
    assert [e.kind for e in state.events[-2:]] == ["status", "request"]


def test_a_failed_commit_leaves_the_request_for_the_next_cycle(
    tmp_path: Path, state: State
) -> None:
    fail(state, 4)
    path = inbox.post(tmp_path, {"action": "rerun", "ids": [4]})

    def commit() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        inbox.process(tmp_path, state, commit)
    assert path.exists()
    assert json.loads(path.read_text())["ids"] == [4]


def _measure_all(state: State, f=lambda p: 10.0 + p["x"] - (p["y"] - 0.4) ** 2) -> None:
    for point in state.with_status(PointStatus.PENDING):
        state.record(point.id, f(point.params))


def test_expand_in_several_dims_adds_one_design_of_the_final_box(state: State) -> None:
    _measure_all(state)
    outcomes = inbox.execute(state, {"action": "expand", "bounds": {"x": [None, 16], "y": [-1, 2]}})
    added = [state.point(o.point_id) for o in outcomes if o.changed and o.point_id is not None]
    final = state.space.initial_design()
    assert (state.space.numeric[0].high, state.space.numeric[1].low) == (16, -1.0)
    # one design, of the final box: not the designs of the boxes in between
    assert [p.params for p in added] == final
    assert len({p.batch for p in added}) == 1 and len(added) == len(final)
    assert "5 design points added; 40 of 50 points left" in outcomes[-1].message
    assert policy.current_phase(state)["number"] == 1
    assert policy.current_phase(state)["first_id"] == min(p.id for p in added)


def test_expand_beyond_the_budget_is_refused_unless_it_is_raised(state: State) -> None:
    request = {"action": "expand", "bounds": {"x": [None, 16], "y": [-1, 2]}}
    state.meta = {"max_points": 7}
    [outcome] = inbox.execute(state, request)
    assert not outcome.ok and "adds 5 points but the budget has 2 of 7 left" in outcome.message
    assert "--max-points 10" in outcome.message
    assert state.space.numeric[0].high == 8 and len(state.points) == 5
    assert policy.current_phase(state)["number"] == 0
    outcomes = inbox.execute(state, {**request, "max_points": 10})
    assert all(o.ok for o in outcomes) and len(state.points) == 10
    assert policy.max_points(state, parse_experiment(TOML, "toy.toml")) == 10


def test_after_expand_the_search_goes_on_until_a_match_in_the_new_phase(state: State) -> None:
    from nas.control.plan import next_batch

    # Algorithm 1's stop: one match ends a phase, so the test needs few proposals
    experiment = parse_experiment(
        TOML.replace("[[space]]", 'stop = "paper"\n[[space]]', 1), "toy.toml"
    )
    _measure_all(state)

    def matched_proposal() -> None:
        stop, [point] = next_batch(policy.Study(state, experiment))
        assert stop is None and point.origin == "incremental"
        state.record(point.id, point.predicted)  # measured as predicted: a match

    matched_proposal()
    stop, _ = next_batch(policy.Study(state, experiment))
    assert stop is not None and stop.reason.startswith("converged")
    inbox.execute(state, {"action": "expand", "bounds": {"x": [None, 16], "y": [-1, 2]}})
    assert next_batch(policy.Study(state, experiment)) == (None, [])  # the new design runs first
    _measure_all(state)
    stop, made = next_batch(policy.Study(state, experiment))
    assert stop is None and made, "the old phase's match must not stop the new phase"
    state.record(made[0].id, made[0].predicted + 5.0)  # a miss: the search goes on
    matched_proposal()
    stop, _ = next_batch(policy.Study(state, experiment))
    assert stop is not None and stop.reason.startswith("converged")
