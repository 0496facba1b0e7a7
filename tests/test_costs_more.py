"""Costs, bounds and user rules of an own ``[train] command``: what the controller applies,
what it cannot evaluate, and what ``front`` and ``cost`` accept.

One own model throughout: ``x`` in [0, 1] and an integer width ``w`` in [4, 40];
the user's module refuses ``w > 20`` and prices ``lat = 1 + w / 2 + x`` (and,
in ``withmemory``, ``memory_gib = w / 2``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from experiment_support import run

from nas.config import load_experiment
from nas.control import usercosts
from nas.control.feasible import commands_rule, feasibility
from nas.control.plan import next_batch
from nas.control.policy import Study, StudyError, experiment_of
from nas.record.state import PointStatus
from nas.record.store import StateStore
from nas.search.tradeoff import PredictedPoint

#: The user's module (``[model] feasible`` and ``costs``).
MODULE = """
def narrow(values):
    return "too wide" if values["w"] > 20 else None


def costs(values):
    return {"lat": 1 + values["w"] / 2 + values["x"]}


def withmemory(values):
    return {**costs(values), "memory_gib": values["w"] / 2}
"""


def own_experiment(experiment: str = "", model: str = "", cluster: str = "") -> str:
    """The own model's experiment file, ``experiment``/``model``/``cluster`` lines added."""
    return f"""
[experiment]
name = "own"
metric = "score"
max_points = 30
value_range = [-1000, 1000]
{experiment}

[[space]]
name = "x"
type = "float"
low = 0.0
high = 1.0

[[space]]
name = "w"
type = "int"
low = 4
high = 40

[model]
{model}

[train]
command = [{json.dumps(sys.executable)}, "train.py"]

[cluster]
{cluster}
"""


def score(params: dict) -> float:
    return 90 - (params["x"] - 0.3) ** 2 * 50 - (params["w"] - 20) ** 2 / 40


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A campaign folder holding the user's module, the working directory of the test."""
    (tmp_path / "morecosts.py").write_text(MODULE)
    (tmp_path / "train.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(usercosts, "_LOADED", {})
    sys.modules.pop("morecosts", None)
    yield tmp_path
    sys.modules.pop("morecosts", None)


def init(folder: Path, capsys: pytest.CaptureFixture, text: str) -> Path:
    (folder / "own.toml").write_text(text)
    state = folder / "own.h5"
    code, _, err = run(capsys, "init", "own.toml", "--state", str(state))
    assert code == 0, err
    return state


def measure_design(state: Path, metrics: callable = lambda p: {}, value: callable = score) -> None:
    """Record every pending point with ``value``, its result's ``metrics`` stored with it."""
    with StateStore.open(state) as store:
        for point in store.state.with_status(PointStatus.PENDING):
            store.state.update_point(point.id, extra={"metrics": metrics(point.params)})
            store.state.record(point.id, value(point.params))
        store.commit()


def study_of(state: Path) -> Study:
    read = StateStore.read(state)
    experiment = experiment_of(read, state)
    return Study(read, experiment, commands_rule(experiment))


# ------------------------------------------------------------------ finding 9: [model] feasible


def test_propose_applies_the_user_rule_of_an_own_command(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init(folder, capsys, own_experiment(model='feasible = "morecosts:narrow"'))
    experiment = load_experiment(folder / "own.toml")
    rule = commands_rule(experiment)
    assert rule is not None and rule.reason({"x": 0.5, "w": 30}) == "too wide"
    measure_design(state)
    code, out, err = run(capsys, "propose", "--state", str(state), "-n", "4", "--dry-run", "--json")
    assert code == 0, err
    widths = [p["params"]["w"] for p in json.loads(out)]
    assert widths and all(w <= 20 for w in widths), widths


# ------------------------------------------------------------------ finding 7: a bound no result has


def test_a_bound_no_result_carries_stops_the_search_and_status_says_it_cannot_be_evaluated(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    text = own_experiment("[experiment.constraints]\nlatncy_ms = 6")
    state = init(folder, capsys, text)
    measure_design(state, lambda p: {"latency_ms": 1 + p["w"] / 2, "score": score(p)})
    with StateStore.open(state) as store:
        study = Study(store.state, experiment_of(store.state, state))
        stop, made = next_batch(study)
        assert made == [] and stop is not None and not stop.ok  # exit 1: a person must fix it
        assert "constraints] latncy_ms cannot be evaluated" in stop.reason
        # the name it was meant to be, and not the searched metric, which is no cost
        assert "(measured: latency_ms;" in stop.reason, stop.reason
        store.commit()
    code, out, err = run(capsys, "status", "--state", str(state))
    assert code == 0, err
    assert "constraint latncy_ms <= 6: cannot be evaluated" in out
    assert "does not bind" not in out
    assert "fit: N = " in out  # the stopped search kept its fit for its readers


def test_a_measured_bound_the_results_carry_lets_the_search_go_on(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init(folder, capsys, own_experiment("[experiment.constraints]\nlatency_ms = 16"))
    measure_design(state, lambda p: {"latency_ms": 1 + p["w"] / 2})
    with StateStore.open(state) as store:
        study = Study(store.state, experiment_of(store.state, state))
        assert study.cost_blocker() is None
        assert study.propose(n=2)


def test_a_search_no_candidate_is_left_to_names_the_rules_it_is_held_to(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    """ "infeasible" alone named no key to loosen: the stop says which bounds hold."""
    state = init(folder, capsys, own_experiment("[experiment.constraints]\nlatency_ms = 2"))
    measure_design(state, lambda p: {"latency_ms": 10 + p["w"] / 2})  # every point beyond it
    with StateStore.open(state) as store:
        stop, made = next_batch(Study(store.state, experiment_of(store.state, state)))
    assert made == [] and stop is not None
    assert "no candidate left to propose" in stop.reason, stop.reason
    assert "(candidates are held to [experiment.constraints] latency_ms <= 2)" in stop.reason


# ------------------------------------------------------------------ finding 10: GPU memory


def test_max_gpu_memory_applies_an_own_models_memory_cost(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    text = own_experiment(model='costs = "morecosts:withmemory"', cluster="max_gpu_memory_gib = 16")
    (folder / "own.toml").write_text(text)
    rule = feasibility(load_experiment(folder / "own.toml"))
    assert rule is not None and rule({"x": 0.5, "w": 20}) and not rule({"x": 0.5, "w": 30})
    assert "max_gpu_memory_gib = 16 GiB" in rule.reason({"x": 0.5, "w": 30})
    code, _, err = run(capsys, "init", "own.toml", "--validate-only")
    assert code == 0 and "max_gpu_memory_gib has no effect" not in err


@pytest.mark.parametrize("model", ["", 'costs = "morecosts:costs"'])
def test_max_gpu_memory_without_an_estimate_is_named_at_init(
    folder: Path, capsys: pytest.CaptureFixture, model: str
) -> None:
    (folder / "own.toml").write_text(own_experiment(model=model, cluster="max_gpu_memory_gib = 16"))
    code, _, err = run(capsys, "init", "own.toml", "--validate-only")
    assert code == 0, err
    assert "own.toml: [cluster] max_gpu_memory_gib has no effect" in err
    assert "memory_gib" in err.split("has no effect", 1)[1]


# ------------------------------------------------------------------ finding 11: a cost most lack


def test_a_tradeoff_cost_too_few_results_carry_stops_with_the_real_cause(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init(folder, capsys, own_experiment('tradeoff = "latency_ms"\nbatch_size = 2'))
    measure_design(state, lambda p: {"latency_ms": 1 + p["w"] / 2} if p["w"] <= 20 else {})
    with StateStore.open(state) as store:
        study = Study(store.state, experiment_of(store.state, state))
        carried = sum(p.params["w"] <= 20 for p in store.state.points)
        stop, _ = next_batch(study)
        assert stop is not None and not stop.ok
        assert f"only {carried} of {len(store.state.points)} measured points carry latency_ms" in (
            stop.reason
        )
        assert "needs 3 affinely independent" in stop.reason
        with pytest.raises(StudyError, match="tradeoff cannot be evaluated"):
            study.propose(dry_run=True)


def test_the_fit_line_does_not_claim_too_few_points_when_they_determine_a_fit(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init(folder, capsys, own_experiment())
    measure_design(state)
    blocker = study_of(state).fit_blocker()
    assert not blocker.startswith("a fit needs"), blocker
    assert "determine one" in blocker and "none is stored yet" in blocker
    code, out, _ = run(capsys, "status", "--state", str(state))
    assert code == 0 and "fit: no fit yet: the measured points determine one" in out


# ------------------------------------------------------------------ finding 12: front --cost


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give --cost NAME: the model has no built-in family"),
        (("--cost", "bad name"), "--cost: expected a cost name"),
        (("--cost", ""), "--cost: expected a cost name"),
    ],
)
def test_front_refuses_a_cost_it_cannot_draw_against(
    folder: Path, capsys: pytest.CaptureFixture, argv: tuple[str, ...], message: str
) -> None:
    state = init(folder, capsys, own_experiment(model='costs = "morecosts:costs"'))
    measure_design(state, lambda p: {"latency_ms": 1 + p["w"] / 2})
    code, out, err = run(capsys, "front", "--state", str(state), *argv)
    assert (code, out) == (2, ""), err
    assert message in err and "gmacs needs a built-in family" not in err
    if not argv:
        assert "known lat" in err and "latency_ms" in err


def test_front_of_equal_predictions_lists_no_round_off_trade_offs(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    text = own_experiment("[experiment.constraints]\nlat = 9", model='costs = "morecosts:costs"')
    state = init(folder, capsys, text)  # the bound leaves 3 design points: round-off shows
    measure_design(state, value=lambda p: 80.0)
    code, out, err = run(capsys, "front", "--state", str(state), "--cost", "lat", "--json")
    assert code == 0, err
    assert len(json.loads(out)["predicted"]) == 1


def test_round_off_is_judged_against_the_metrics_scale() -> None:
    from nas.control.tradeoffs import beyond_round_off

    front = [
        PredictedPoint({"w": 4}, 79.99999999999999, 0.0, 3.0),
        PredictedPoint({"w": 5}, 80.0, 0.0, 4.0),
        PredictedPoint({"w": 6}, 80.00000000000001, 0.0, 5.0),
        PredictedPoint({"w": 7}, 80.001, 0.0, 6.0),
    ]
    assert [p.params["w"] for p in beyond_round_off(front, "maximize")] == [4, 7]
    small = [PredictedPoint({"w": 4}, 2e-12, 0.0, 1.0), PredictedPoint({"w": 5}, 3e-12, 0.0, 2.0)]
    assert beyond_round_off(small, "maximize") == small  # a tiny metric is no round-off
    losses = [PredictedPoint({"w": 4}, 0.5, 0.0, 1.0), PredictedPoint({"w": 5}, 0.4, 0.0, 2.0)]
    assert beyond_round_off(losses, "minimize") == losses


# ------------------------------------------------------------------ finding 14: cost --params


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ("x=5,w=10", 1, "--params: x=5 outside the box (x in [0.0, 1.0], w in [4, 40])"),
        ("x=0.5,w=10,z=3", 2, "--params: unknown name(s) z; the [[space]] dimensions are x, w"),
        ("x=0.5", 2, "--params lacks w"),
    ],
)
def test_cost_checks_params_as_the_search_does(
    folder: Path, capsys: pytest.CaptureFixture, params: str, code: int, message: str
) -> None:
    (folder / "own.toml").write_text(own_experiment(model='costs = "morecosts:costs"'))
    got, out, err = run(capsys, "cost", "own.toml", "--params", params)
    assert (got, out) == (code, ""), err
    assert message in err and "KeyError" not in err


def test_cost_prices_an_integer_dimension_as_the_search_snaps_it(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    (folder / "own.toml").write_text(own_experiment(model='costs = "morecosts:costs"'))
    code, out, err = run(capsys, "cost", "own.toml", "--params", "x=0.5,w=10.7", "--json")
    assert code == 0, err
    assert "note: w=10.7 priced as 11, the nearest integer" in err
    doc = json.loads(out)
    assert doc["params"]["w"] == 11 and doc["costs"]["lat"] == 7.0


# ------------------------------------------------------------------ finding 15: the metric as a cost


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ('tradeoff = "score"', "[experiment] tradeoff"),
        ("[experiment.constraints]\nscore = 50", "[experiment] constraints.score"),
    ],
)
def test_the_metric_is_no_cost(
    folder: Path, capsys: pytest.CaptureFixture, setting: str, key: str
) -> None:
    (folder / "own.toml").write_text(own_experiment(setting))
    code, _, err = run(capsys, "init", "own.toml", "--validate-only")
    assert code == 1
    assert f"own.toml: {key}: 'score' is the searched metric" in err


def test_init_refuses_a_box_no_point_of_which_the_bounds_allow(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    text = own_experiment("[experiment.constraints]\nlat = 0.5", 'costs = "morecosts:costs"')
    (folder / "own.toml").write_text(text)
    code, _, err = run(capsys, "init", "own.toml", "--state", str(folder / "own.h5"))
    assert code == 1, err
    assert "own.toml: no point of the box is allowed by [experiment.constraints] lat <= 0.5" in err
    assert not (folder / "own.h5").exists()
