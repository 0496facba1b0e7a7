"""A search that stops because no candidate is left says when the user's ``[model] feasible``
failed for candidates: those failures made them infeasible, and the stop read as if the
rules had simply been too tight."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from test_trainer_contract_a3_hooks import ARMED, experiment_text, rule_of, rules  # noqa: F401 (a fixture)

from nas.config import parse_experiment
from nas.control.plan import next_batch
from nas.control.policy import Study
from nas.record.state import PointStatus
from nas.record.store import StateStore


def test_the_stop_names_the_failures_of_the_users_rule(
    tmp_path: Path,
    rules: Callable[[str], str],  # noqa: F811
) -> None:
    module = rules(ARMED.replace("EXIT", '"no width for you"'))
    rule = rule_of(tmp_path, module, "rule")
    experiment = parse_experiment(experiment_text(f'feasible = "{module}:rule"'))
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        study = Study(store.state, experiment, feasible=rule)
        for point in study.initial_batch():
            store.state.record(point.id, point.params["width"] - abs(point.params["lr"] - 0.01))
        assert not store.state.with_status(PointStatus.PENDING)
        sys.modules[module].ARMED = True  # every new candidate now makes the rule exit
        stop, made = next_batch(study)
    assert made == [] and stop is not None
    assert "no candidate left to propose" in stop.reason
    assert f"[model] feasible {module}:rule failed for" in stop.reason
    assert "raised SystemExit: no width for you" in stop.reason
