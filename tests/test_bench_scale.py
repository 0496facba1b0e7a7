"""The scale benchmarks still measure what they say: their states are fitted and searched at
once, and every row of their smallest tables is a measurement, not an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import controller_scale  # noqa: E402

from nas.config import parse_experiment  # noqa: E402
from nas.control import policy  # noqa: E402
from nas.record.store import StateStore  # noqa: E402


def _bench(*argv: str) -> list[list[str]]:
    """The table rows (cells) a benchmark prints, header and rule left out."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows[2:]]


def test_the_benchmark_states_leave_no_design_point_to_propose(tmp_path: Path) -> None:
    text = controller_scale.EXPERIMENT.format(jobs=4, command="true")
    experiment = parse_experiment(text, "scale.toml")
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        params = controller_scale.points(store.state, experiment, 30)
        for p in params:
            store.state.record(store.state.add_point(p, "manual", 0).id, controller_scale.value(p))
        optimizer = policy.Study(store.state, experiment).optimizer
        assert optimizer.unissued_design == []
        assert [p["a"] for p in params[:5]] == [p["a"] for p in optimizer.initial_design()]
        assert all(0.0 <= p[k] <= 1.0 for p in params for k in "abc")


@pytest.mark.parametrize("box", [[], ["--positive"]])
def test_status_scale_measures_every_row(box: list[str]) -> None:
    rows = _bench(
        "benchmarks/status_scale.py", "--status", "200", "--fit", "60", "--propose", "60", *box
    )
    assert [row[0].split(" ")[0] for row in rows] == ["status", "fit", "propose"]
    for row in rows:
        assert float(row[2]) > 0.0 and float(row[4]) > 0.0, row


def test_controller_scale_measures_a_propose_cycle() -> None:
    (row,) = _bench("benchmarks/controller_scale.py", "--sizes", "10")
    assert row[0] == "10"
    assert all(float(cell) > 0.0 for cell in row[1:]), row
