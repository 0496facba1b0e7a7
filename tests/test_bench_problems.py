"""The benchmark problems put their optimum where their documentation says, and the
summary counts a stop as too early exactly when the returned point is above 1 % regret."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import problems  # noqa: E402
import sample_efficiency  # noqa: E402


def _faces(problem: problems.Problem, x: np.ndarray) -> list[str]:
    return [
        "lo" if v == lo else "hi" if v == hi else "."
        for v, lo, hi in zip(x, problem.lows, problem.highs, strict=True)
    ]


@pytest.mark.parametrize(
    ("name", "stated", "faces"),
    [
        ("nas8i", (124, 229, 401, 801, 12, 14, 15, 2), "........"),
        ("nas8h", (110, 195, 313, 512, 18, 20, 23, 7), "...h...."),
        ("nas8c", (96, 192, 384, 759, 7, 8, 8, 4), "hhh..hh."),
    ],
)
def test_nas_optimum_lies_where_documented(name, stated, faces):
    problem = problems.PROBLEMS[name]()
    x, best = problems._coordinate_descent(problem, np.asarray(stated, dtype=float))
    assert best == pytest.approx(problem.f_min, abs=1e-12)
    assert "".join(f[0] if f != "." else "." for f in _faces(problem, x)) == faces


def test_shifted_styblinski_tang_optimum_is_off_centre():
    problem = problems.styblinski8s()
    (optimum,) = problem.known_optima
    assert problem.f_min == pytest.approx(-39.16617 * 8, rel=1e-6)
    assert problem(optimum) == pytest.approx(problem.f_min)
    fractions = np.asarray(optimum) / np.asarray(problem.highs)
    assert (fractions < 0.5).all() and (fractions <= 0.15).sum() == 3


def test_too_early_needs_the_own_rule_and_regret_above_one_percent():
    problem = problems.branin()
    bad, good = problem.f_min + 0.02 * problem.span, problem.f_min
    run = {"true": [bad], "stops": {"paper": (5, bad), "default": (9, good)}, "returned": good}
    assert sample_efficiency.too_early(problem, "paper", run) is True
    assert sample_efficiency.too_early(problem, "default", run) is False
    assert sample_efficiency.too_early(problem, "tpe", run) is None
    assert sample_efficiency.final_regret(problem, run) == 0.0
    assert sample_efficiency.final_regret(problem, {"true": [bad]}) == pytest.approx(0.02)


def test_the_room_table_counts_runs_that_reach_one_percent_in_time_and_the_lag_to_the_stop():
    """Three runs of a 2-d problem (window 12, three checks: room up to evaluation 65)."""
    problem = problems.branin()
    far, near = problem.f_min + 0.05 * problem.span, problem.f_min + 0.005 * problem.span
    trues = [[far] * 9 + [near] * 71, [far] * 70 + [near] * 10, [far] * 80]
    stops = [{"default": (40, near)}, {}, {"default": (30, far)}]  # right, none, too early
    tasks = [sample_efficiency.Task("default", "branin", False, seed, 80) for seed in range(3)]
    runs = {
        t.key: {"true": true, "stops": stop, "returned": true[-1]}
        for t, true, stop in zip(tasks, trues, stops, strict=True)
    }
    curves = {
        ("default", "branin", False): [
            sample_efficiency.regret_curve(problem, r["true"], 80) for r in runs.values()
        ]
    }
    rows = sample_efficiency._headroom_table(runs, tasks, ["default"], [("branin", False)], curves)
    assert rows[-1] == "| branin | default | 2/3 | 1/3 | 1/3 | 30 |"
    assert sample_efficiency._headroom_table(runs, tasks, ["tpe"], [], curves) == []


def test_the_refill_simulation_keeps_the_gpus_busy_that_batches_leave_waiting():
    """Same design, same times: batches wait for their slowest training, refills do not.

    Four batches after the design: over two, the last trainings' tail (the
    GPUs that finished wait for the campaign's end in both modes) can
    outweigh what the batches lose.
    """
    import refill_wall_clock as wall

    runs = {m: wall.simulate("nas5", 0, m, q=4, budget=23, jitter=0.3) for m in wall.MODES}
    for run in runs.values():
        assert len(run["times"]) == 23 and np.all(np.diff(run["times"]) >= 0)
        assert np.all(np.diff(run["regret"]) <= 0) and 0 < run["busy"] <= 1.0 + 1e-12
    assert runs["refill"]["busy"] > runs["batches"]["busy"]
    design = len(runs["batches"]["times"]) - 16  # four batches of four after the design
    assert runs["batches"]["times"][:design] == runs["refill"]["times"][:design]
