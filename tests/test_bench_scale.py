"""The scale benchmarks still measure what they say: their states are fitted and searched at
once, and every row of their smallest tables is a measurement, not an error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import controller_scale  # noqa: E402
from bench_support import run_benchmark, table_rows  # noqa: E402

from nas.config import parse_experiment  # noqa: E402
from nas.control import policy  # noqa: E402
from nas.record.store import StateStore  # noqa: E402


def _bench(script: str, *argv: str) -> list[list[str]]:
    """The table rows (cells) a benchmark prints, header and rule left out."""
    done = run_benchmark(script, *argv)
    assert done.returncode == 0, done.stderr
    return table_rows(done.stdout)[2:]


def test_the_benchmark_states_leave_no_design_point_to_propose(tmp_path: Path) -> None:
    text = controller_scale.experiment_text(4, "true")
    experiment = parse_experiment(text, "scale.toml")
    with StateStore.create(tmp_path / "s.h5", experiment) as store:
        params = controller_scale.points(store.state, experiment, 30)
        for p in params:
            store.state.record(store.state.add_point(p, "manual", 0).id, controller_scale.value(p))
        optimizer = policy.Study(store.state, experiment).optimizer
        assert optimizer.unissued_design == []
        assert [p["a"] for p in params[:5]] == [p["a"] for p in optimizer.initial_design()]
        assert all(0.0 <= p[k] <= 1.0 for p in params for k in "abc")


def test_the_positive_noisy_variant_changes_the_box_and_the_noise_alone() -> None:
    # what status_scale.py --positive --noise '"auto"' measures
    plain = parse_experiment(controller_scale.experiment_text(4, "true"), "scale.toml")
    text = controller_scale.experiment_text(4, "true", 1.0, 10.0, '"auto"')
    varied = parse_experiment(text, "scale.toml")
    assert [(d.low, d.high) for d in varied.space.dims] == [(1.0, 10.0)] * 3
    assert [(d.low, d.high) for d in plain.space.dims] == [(0.0, 1.0)] * 3
    assert (varied.experiment.noise, plain.experiment.noise) == ("auto", None)
    assert varied.experiment.batch_size == plain.experiment.batch_size == 4


@pytest.mark.parametrize("box", [[], ["--positive"]])
def test_status_scale_measures_every_row(box: list[str]) -> None:
    rows = _bench("status_scale.py", "--status", "200", "--fit", "60", "--propose", "60", *box)
    assert [row[0].split(" ")[0] for row in rows] == ["status", "fit", "propose"]
    for row in rows:
        assert float(row[2]) > 0.0 and float(row[4]) > 0.0, row


def test_controller_scale_measures_a_propose_cycle() -> None:
    (row,) = _bench("controller_scale.py", "--sizes", "10")
    assert row[0] == "10"
    assert all(float(cell) > 0.0 for cell in row[1:]), row
