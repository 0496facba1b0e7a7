"""The benchmarks' noise levels: the evaluator adds the level asked for, cached runs of the
default level keep their keys, and the estimator table reads what the runs measured."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import noise_estimate  # noqa: E402
import sample_efficiency  # noqa: E402
from problems import NOISE_FRACTION, PROBLEMS  # noqa: E402


def test_runs_of_the_default_level_keep_the_keys_cached_before_levels_existed() -> None:
    assert sample_efficiency.Task("default", "nas5", True, 3, 80).key == "default|nas5|noisy|3|80"
    assert sample_efficiency.Task("default", "nas5", False, 3, 80, 0.01).key == (
        "default|nas5|exact|3|80"
    )
    assert sample_efficiency.Task("default", "nas5", True, 3, 80, 0.003).key == (
        "default|nas5|noisy0.003|3|80"
    )


@pytest.mark.parametrize("fraction", [NOISE_FRACTION, 0.03])
def test_the_evaluator_adds_noise_of_the_level_asked_for(fraction: float) -> None:
    problem = PROBLEMS["branin"]()
    ev = sample_efficiency.Evaluator(problem, 400, True, 0, fraction)
    rng = np.random.default_rng(5)
    for _ in range(400):
        ev(
            [
                int(rng.integers(lo, hi + 1))
                for lo, hi in zip(problem.lows, problem.highs, strict=True)
            ]
        )
    noise = np.array(ev.measured) - np.array(ev.true)
    assert len(ev.points) == len(ev.measured) == len(ev.true)
    assert np.std(noise) == pytest.approx(fraction * problem.span, rel=0.15)


def test_the_estimator_table_reads_the_runs_points_and_measurements() -> None:
    task = sample_efficiency.Task("default", "branin", True, 0, 30, 0.03)
    runs = {task.key: sample_efficiency.run_task(task)}
    found = noise_estimate.estimates(runs[task.key], "branin", [30])
    assert 0.0 < found[30].sd and found[30].support == 30
    text = noise_estimate.table(runs, [task], [30])
    ratio = found[30].sd / (0.03 * PROBLEMS["branin"]().span)
    assert f"| branin | 3.0% | {ratio:.2f} ({ratio:.2f}-{ratio:.2f}); right " in text
