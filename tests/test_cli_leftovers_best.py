"""Which point is "best": one rule for ``status``, ``report``, ``best`` and a bound's "best within".

With ``[experiment] noise`` a lucky single measurement must not win: every
reader ranks by the stored fit's smoothed values, so a bound that rules out
nothing never changes the answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_support import command_experiment, run

#: (x, measurement): one lucky spike at x = 0.4 amid a plateau near x = 0.7.
MEASURED = [
    (0.1, 1.0),
    (0.2, 1.2),
    (0.3, 1.1),
    (0.4, 4.5),
    (0.5, 1.3),
    (0.6, 3.0),
    (0.65, 3.1),
    (0.7, 3.2),
    (0.75, 3.1),
    (0.8, 3.0),
]
COSTS = 'def costs(params):\n    return {"lat": 1.0 + params["x"]}\n'


@pytest.fixture
def noisy(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An own model with noise 1, a bound that rules out nothing, and :data:`MEASURED` added."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latcosts.py").write_text(COSTS)
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    text = command_experiment("noisy", ["true", "{x}"], space, metric="score", noise=1.0)
    text = text.replace("[train]\n", '[model]\ncosts = "latcosts:costs"\n[train]\n')
    text = text.replace("[[space]]", "[experiment.constraints]\nlat = 100\n[[space]]", 1)
    (tmp_path / "noisy.toml").write_text(text)
    state = tmp_path / "noisy.h5"
    assert run(capsys, "init", "noisy.toml", "--state", str(state))[0] == 0
    for x, value in MEASURED:
        code, _, err = run(capsys, "add", "--state", str(state), "--params", f"x={x}",
                           "--value", str(value))  # fmt: skip
        assert code == 0, err
    return state


def test_best_and_best_within_name_the_smoothed_best_as_status_does(
    noisy: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "status", "--state", str(noisy), "--json")
    assert code == 0, err
    status = json.loads(out)
    best = status["best"]["id"]
    assert status["raw_best"]["id"] != best  # the spike is the highest single measurement
    assert status["costs"]["best_within_all"]["id"] == best
    assert status["costs"]["constraints"][0]["best"]["id"] == best
    code, out, err = run(capsys, "best", "--state", str(noisy), "--json")
    assert code == 0, err
    document = json.loads(out)["best"]
    assert document["id"] == best and document["smoothed"] is not None
    code, out, _ = run(capsys, "best", "--state", str(noisy))
    assert out.startswith(f"point {best} ") and " (smoothed " in out
    code, out, _ = run(capsys, "status", "--state", str(noisy))
    assert f"best within: point {best} =" in out


def test_best_with_nothing_measured_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    (tmp_path / "fresh.toml").write_text(command_experiment("fresh", ["true", "{x}"], space))
    state = tmp_path / "fresh.h5"
    assert run(capsys, "init", str(tmp_path / "fresh.toml"), "--state", str(state))[0] == 0
    code, out, err = run(capsys, "best", "--state", str(state))
    assert (code, out, err) == (1, "", "no point is measured yet\n")
