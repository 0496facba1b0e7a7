"""``[experiment] refill``: a batch's free slots proposed as its points finish, not after all of them."""

from __future__ import annotations

import pytest
from test_inbox import TOML as INBOX_TOML

from nas.config import ConfigError, parse_experiment
from nas.control import policy
from nas.control.plan import Stop, free_slots, next_batch
from nas.record.state import PointStatus, State

#: The inbox tests' toy box with the design left at its default, batches of three and a
#: ``refill`` to fill in; ``extra`` takes more ``[experiment]`` keys.
TOML = INBOX_TOML.replace(
    'design = "corners"\n',
    "batch_size = 3\nmax_points = 20\nrefill = {refill}\n{extra}\n",
    1,
)
assert "{refill}" in TOML


def truth(params: dict) -> float:
    return 10.0 + params["x"] - 3 * (params["y"] - 0.4) ** 2


def setup(refill: bool, extra: str = "") -> tuple[State, policy.Study]:
    experiment = parse_experiment(TOML.format(refill=str(refill).lower(), extra=extra), "toy.toml")
    state = State(experiment.text, experiment.space)
    policy.Study(state, experiment).initial_batch()
    return state, policy.Study(state, experiment)


def measure(state: State, *points) -> None:
    for point in points:
        state.record(point.id, truth(point.params))


def pending(state: State) -> list:
    return state.with_status(PointStatus.PENDING)


@pytest.mark.parametrize("refill", [False, True])
def test_the_design_is_waited_for_in_both_modes(refill: bool) -> None:
    state, study = setup(refill)
    design = pending(state)
    measure(state, *design[:-1])
    assert free_slots(study) == 0 and next_batch(study) == (None, [])
    measure(state, design[-1])
    stop, made = next_batch(study)
    assert stop is None and len(made) == 3


def test_without_refill_a_batch_is_finished_before_the_next() -> None:
    state, study = setup(False)
    measure(state, *pending(state))
    _, batch = next_batch(study)
    measure(state, batch[0])
    assert free_slots(study) == 0 and next_batch(study) == (None, [])
    measure(state, *batch[1:])
    assert len(next_batch(study)[1]) == 3


def test_with_refill_each_finished_point_frees_a_slot_of_the_batch() -> None:
    state, study = setup(True)
    measure(state, *pending(state))
    _, batch = next_batch(study)
    assert [p.origin for p in batch] == ["incremental", "fill", "fill"]
    measure(state, batch[0])
    assert free_slots(study) == 1
    stop, [refill] = next_batch(study)
    assert stop is None and refill.batch == batch[0].batch + 1
    # the two still out are the first slots of the batch the refill continues
    assert refill.origin == "fill" and refill.predicted is not None
    assert len(pending(state)) == 3 and free_slots(study) == 0
    measure(state, batch[1], batch[2])
    assert [p.origin for p in next_batch(study)[1]] == ["fill", "fill"]
    assert len(pending(state)) == 3


def test_with_refill_points_added_by_hand_are_waited_for() -> None:
    state, study = setup(True)
    measure(state, *pending(state))
    _, batch = next_batch(study)
    measure(state, batch[0])
    state.add_point({"x": 1, "y": 0.5}, "manual", state.next_batch())
    assert free_slots(study) == 0 and next_batch(study) == (None, [])


def test_a_search_that_may_stop_lets_the_points_out_finish_first() -> None:
    """Algorithm 1's rule: one proposal measured as predicted stops the search."""
    state, study = setup(True, 'stop = "paper"\ntolerance = 0.01')
    design = pending(state)
    measure(state, *design)
    _, batch = next_batch(study)
    state.record(batch[0].id, batch[0].predicted)  # a match: the rule would stop
    assert study.converged()
    assert next_batch(study) == (None, [])  # no refill, no stop: two points still train
    assert len(state.points) == len(design) + 3
    for point in batch[1:]:
        state.record(point.id, point.predicted)
    stop, made = next_batch(study)
    assert made == [] and isinstance(stop, Stop) and stop.reason.startswith("converged")


def test_a_spent_budget_lets_the_points_out_finish_before_it_stops() -> None:
    state, study = setup(True)
    design = pending(state)
    state.meta = {"max_points": len(design) + 3}  # the design and one batch
    measure(state, *design)
    _, batch = next_batch(study)
    measure(state, batch[0])
    assert next_batch(study) == (None, [])
    measure(state, *batch[1:])
    stop, made = next_batch(study)
    assert made == [] and stop is not None and stop.reason.startswith("max_points reached")


def test_refill_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"toy.toml.*refill"):
        parse_experiment(TOML.format(refill='"yes"', extra=""), "toy.toml")
