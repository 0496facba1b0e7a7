"""``[experiment.constraints]``: proposals, designs and ``best`` never break a bound."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cost_support import accuracy, measure_pending, measured_design, resnet_experiment
from experiment_support import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.config import ConfigError, parse_experiment
from nas.control.constraints import Constraint, best_within, candidate_rule, parse_where
from nas.control.costs import known_cost
from nas.control.policy import Study
from nas.record.store import StateStore
from nas.search.propose import SearchError


def experiment_text(
    g1: tuple[int, int], g2: tuple[int, int], constraints: str, batch: int = 1
) -> str:
    return resnet_experiment(g1, g2, f"batch_size = {batch}", constraints)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int], float, int]:
    low1 = draw(st.integers(2, 20))
    low2 = draw(st.integers(4, 40))
    g1 = (low1, low1 + draw(st.integers(4, 40)))
    g2 = (low2, low2 + draw(st.integers(4, 60)))
    share = draw(st.floats(0.15, 0.85))
    batch = draw(st.integers(1, 3))
    return g1, g2, share, batch


@given(boxes())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_design_point_proposal_or_best_breaks_a_known_cost_bound(
    box: tuple[tuple[int, int], tuple[int, int], float, int],
) -> None:
    g1, g2, share, batch = box
    probe = parse_experiment(experiment_text(g1, g2, ""))
    gmacs = known_cost(probe, "gmacs")
    low, high = gmacs({"g1": g1[0], "g2": g2[0]}), gmacs({"g1": g1[1], "g2": g2[1]})
    limit = low + share * (high - low)
    experiment = parse_experiment(experiment_text(g1, g2, f"gmacs = {limit!r}", batch))
    with tempfile.TemporaryDirectory() as folder:
        with StateStore.create(Path(folder) / "s.h5", experiment) as store:
            study = Study(store.state, experiment)
            study.initial_batch()
            for _ in range(4):
                measure_pending(study.state)
                try:
                    if not study.propose():
                        break
                except SearchError:  # a small box holds few points within the bound: all taken
                    break
            measure_pending(study.state)
            points = store.state.points
    assert points, "the all-low corner is within every bound drawn here"
    for point in points:
        assert gmacs(point.params) <= limit, (point.origin, point.params, limit)
    best = best_within(store.state, experiment, [Constraint("gmacs", limit)])
    assert best is not None and gmacs(best.params) <= limit


def test_a_measured_bound_holds_the_predicted_cost_with_its_error(tmp_path: Path) -> None:
    experiment = parse_experiment(experiment_text((4, 32), (8, 64), "device_hours = 2.0"))
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        study = Study(store.state, experiment)
        design = study.initial_batch()
        assert len(design) == len(experiment.space.initial_design()), "no cost is known yet"
        for point in design:
            hours = 0.05 * point.params["g1"] + 0.02 * point.params["g2"]
            store.state.update_point(point.id, extra={"pace": {"device_hours": hours}})
            store.state.record(point.id, accuracy(point.params))
        rule = candidate_rule(store.state, experiment, [Constraint("device_hours", 2.0)])
        assert rule({"g1": 4, "g2": 8}) and not rule({"g1": 32, "g2": 64})
        proposed = study.propose(n=3)
        assert proposed
        from nas.control.costs import cost_predictor, cost_source

        predict = cost_predictor(store.state, experiment, cost_source(experiment, "device_hours"))
        values, errors = predict([p.params for p in proposed])
        assert np.all(values + errors <= 2.0)


def test_status_says_which_constraint_binds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    experiment = parse_experiment(
        experiment_text((4, 32), (8, 64), "gmacs = 0.001\nparams_m = 100"), str(tmp_path / "e.toml")
    )
    state = tmp_path / "s.h5"
    with StateStore.create(state, experiment) as store:
        measured_design(store.state, experiment).store_fit()
        store.commit()
    code, out, err = run(capsys, "status", "--state", str(state), "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)["costs"]["constraints"]}
    assert rows["gmacs"]["binds"] and not rows["params_m"]["binds"]
    assert rows["gmacs"]["best"]["cost"] <= 0.001
    code, out, err = run(capsys, "status", "--state", str(state))
    assert "constraint gmacs <= 0.001: binds" in out
    assert "constraint params_m <= 100: does not bind" in out
    assert "the spline's predicted optimum without the bounds costs" in rows["gmacs"]["why"]
    best = rows["gmacs"]["best"]["id"]
    code, out, err = run(capsys, "show", "--state", str(state), str(best))
    assert code == 0, err
    assert "within; binds the search" in out
    code, out, err = run(capsys, "add", "--state", str(state), "--params", "g1=32,g2=64")
    code, out, err = run(capsys, "show", "--state", str(state), out.strip(), "--json")
    rows = {row["name"]: row for row in json.loads(out)["constraints"]}
    assert rows["gmacs"]["within"] is False and rows["params_m"]["within"] is True


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("gmacs = -1", "constraints: gmacs: expected a finite number >= 0"),
        ('gmacs = "twenty"', "gmacs: expected a number"),
        ('"bad name" = 3', "expected a cost name"),
    ],
)
def test_a_bad_constraint_names_its_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_experiment(experiment_text((4, 32), (8, 64), table))


def test_a_known_cost_needs_a_model_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = '[experiment]\nname = "hand"\n[experiment.constraints]\ngmacs = 3\n'
    text += '[[space]]\nname = "x"\ntype = "float"\nlow = 0\nhigh = 1\n'
    (tmp_path / "hand.toml").write_text(text)
    code, _, err = run(capsys, "init", str(tmp_path / "hand.toml"), "--state", str(tmp_path / "h5"))
    assert code == 1
    assert (
        "[experiment] constraints.gmacs: the known cost gmacs needs a [model] table with a built-in family"
        in err
    )


def test_where_parses_one_bound() -> None:
    assert parse_where(" gmacs <= 2.5e1 ") == Constraint("gmacs", 25.0)
    assert str(Constraint("params_m", 25.0)) == "params_m <= 25"
