"""``[model] costs``: an own model's costs from the user's function, in bounds, trade-offs and readers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from experiment_support import LOG_LR, command_experiment, run

from nas.config import load_experiment
from nas.control.constraints import Constraint, best_within
from nas.control.policy import Study
from nas.record.state import PointStatus
from nas.record.store import StateStore
from nas.search.pareto import nondominated
from nas.search.propose import SearchError

REPO = Path(__file__).resolve().parent.parent
SCORE = REPO / "examples" / "shell" / "score.sh"
#: The user's module: good and broken cost functions (one module, identical in every test).
MODULE = '''
import math


def costs(values):
    """Latency grows with the square of the width; the learning rate costs nothing."""
    return {"latency_ms": 0.5 * values["width"] ** 2, "gflops": 3 * values["width"] + values["k"]}


def not_mapping(values):
    return 3.0


def bad_name(values):
    return {"fast ms": 1.0}


def reserved(values):
    return {"device_hours": 1.0}


def not_finite(values):
    return {"latency_ms": math.nan}


def a_bool(values):
    return {"latency_ms": True}


def raises(values):
    raise KeyError("depth")


def narrow(values):
    if values["width"] == 9:
        raise ValueError("too wide to time")
    return costs(values)
'''
#: What the search optimises: better with width, so a bound on latency binds.
LIMIT = 18.0


def score(params: dict) -> float:
    return -((math.log10(params["lr"]) + 2) ** 2) + params["width"]


def write_experiment(folder: Path, function: str = "costs", **settings: object) -> Path:
    space = {"lr": LOG_LR, "width": {"type": "int", "low": 2, "high": 10}}
    text = command_experiment("own", [str(SCORE), "{lr}", "{width}"], space, fixed={"k": 1},
                              metric="score", max_points=30, batch_size=2, seed=3,
                              **settings)  # fmt: skip
    text = text.replace("[model]\n", f'[model]\ncosts = "owncosts:{function}"\n')
    text += f"[experiment.constraints]\nlatency_ms = {LIMIT}\n"
    (folder / "owncosts.py").write_text(MODULE)
    (folder / "own.toml").write_text(text)
    return folder / "own.toml"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def latency(params: dict) -> float:
    return 0.5 * params["width"] ** 2


def test_cost_prints_the_functions_costs(folder: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_experiment(folder)
    code, out, err = run(capsys, "cost", str(path), "--params", "lr=0.01,width=4", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["costs"] == {"latency_ms": 8.0, "gflops": 13.0}
    assert doc["params"] == {"k": 1, "lr": 0.01, "width": 4}
    code, out, err = run(capsys, "cost", str(path), "--params", "lr=0.01,width=4")
    assert code == 0 and "costs       latency_ms = 8, gflops = 13" in out


def test_bounds_and_the_tradeoff_use_the_functions_costs(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_experiment(folder, tradeoff="gflops")
    state_path = folder / "own.h5"
    code, _, err = run(capsys, "init", str(path), "--state", str(state_path))
    assert code == 0, err
    experiment = load_experiment(path)
    with StateStore.open(state_path) as store:
        study = Study(store.state, experiment)
        for _ in range(6):
            for point in store.state.with_status(PointStatus.PENDING):
                store.state.record(point.id, score(point.params))
            try:
                if not study.propose():
                    break
            except SearchError:  # every legal width within the bound is taken
                break
        for point in store.state.with_status(PointStatus.PENDING):
            store.state.record(point.id, score(point.params))
        store.commit()
        points = store.state.points
        best = best_within(store.state, experiment, [Constraint("latency_ms", LIMIT)])
    assert len(points) > len(experiment.space.initial_design())
    assert all(latency(p.params) <= LIMIT for p in points), [p.params for p in points]
    assert best is not None and best.params["width"] == 6
    code, out, err = run(capsys, "front", "--state", str(state_path), "--json", "--measured-only")
    assert code == 0, err
    doc = json.loads(out)
    done = [p for p in points if p.status == PointStatus.DONE]
    gflops = [3 * p.params["width"] + 1 for p in done]
    expected = nondominated([p.value for p in done], gflops)
    assert doc["cost"] == "gflops"
    assert [m["id"] for m in doc["measured"]] == [done[i].id for i in expected]
    assert all(m["cost"] == 3 * m["params"]["width"] + 1 for m in doc["measured"])
    code, out, err = run(capsys, "best", "--state", str(state_path), "--json",
                         "--where", "latency_ms<=8")  # fmt: skip
    assert code == 0, err
    assert latency(json.loads(out)["best"]["params"]) <= 8
    code, out, err = run(capsys, "status", "--state", str(state_path))
    assert code == 0 and "constraint latency_ms <= 18" in out


def test_a_candidate_the_function_cannot_cost_is_never_within_a_bound(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_experiment(folder, "narrow")
    experiment = load_experiment(path)
    from nas.control.costs import cost_source

    cost = cost_source(experiment, "latency_ms").known
    assert cost is not None and cost({"lr": 0.01, "width": 4}) == 8.0
    assert math.isnan(cost({"lr": 0.01, "width": 9}))
    code, out, err = run(capsys, "cost", str(path), "--params", "lr=0.01,width=9")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "own.toml: [model] costs: owncosts:narrow for " in err
    assert "raised ValueError: too wide to time" in err


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("not_mapping", "returned float; expected a mapping of cost names to numbers"),
        ("bad_name", "cost name 'fast ms' is not a name"),
        ("reserved", "cost name 'device_hours' is taken by the measured device-hours"),
        ("not_finite", "cost 'latency_ms' is nan; expected a finite number"),
        ("a_bool", "cost 'latency_ms' is True; expected a number"),
        ("raises", "raised KeyError: 'depth'"),
        ("absent", "'owncosts' has no function 'absent'"),
    ],
)
def test_init_names_a_cost_function_it_cannot_use(
    folder: Path, capsys: pytest.CaptureFixture, function: str, message: str
) -> None:
    path = write_experiment(folder, function)
    code, _, err = run(capsys, "init", str(path), "--state", str(folder / "own.h5"))
    assert code in (1, 2)
    assert re.search(r"own\.toml: \[model\] costs: ", err) and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (folder / "own.h5").exists()


def test_a_bound_on_a_cost_the_function_does_not_return_is_measured(
    folder: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_experiment(folder)
    path.write_text(path.read_text() + "gmacs = 3\n")
    code, _, err = run(capsys, "init", str(path), "--state", str(folder / "own.h5"))
    assert code == 1
    assert "[experiment] constraints.gmacs: the known cost gmacs needs" in err
    assert "or a [model] costs function that returns it" in err
