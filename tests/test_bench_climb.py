"""Coarse-axis climbs on the benchmark: after the stop of the search without the climb on a
stall (``default-climb``), and on a stall (the default, :mod:`nas.search.climb`).

On ``nas8`` seed 3 the default rule stops at evaluation 58 with 1.1 % regret: the
search crept along a ridge and the move that gains (the last depth, 6 levels, from 3
to 1) is one the spline predicts ten tolerances worse. The climb measures the best's
one-level neighbours on the coarse axes and follows those that beat it; the run then
stops below 1 %, at a point no coarse one-level move improves.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import numpy as np  # noqa: E402
import problems  # noqa: E402
import pytest  # noqa: E402
import sample_efficiency as se  # noqa: E402

from nas.search.climb import coarse_axes, one_level_neighbours  # noqa: E402
from nas.search.stopping import stall_length, stall_needed  # noqa: E402


def neighbours(problem, point: tuple) -> list[tuple]:
    """``point``'s one-level neighbours on the coarse axes of ``problem``'s search space."""
    space = se.spline_optimizer(problem, 0).space
    names = se.variable_names(problem)
    params = dict(zip(names, point, strict=True))
    return [
        tuple(p[n] for n in names) for p in one_level_neighbours(space, params, coarse_axes(space))
    ]


def to_stop(method: str) -> dict:
    return se.run_task(se.Task(method, "nas8", False, 3, 80, to_stop=True))


@pytest.fixture(scope="module")
def climbed() -> dict:
    """The climbing run, made once for this module's tests."""
    return to_stop("default-climb")


def test_the_climb_turns_the_ridge_stop_into_a_stop_below_one_percent(climbed: dict) -> None:
    problem = problems.PROBLEMS["nas8"]()
    plain = to_stop("default-noclimb")
    (n_plain, loss_plain), (n_climbed, loss_climbed) = (
        plain["stops"]["default"],
        climbed["stops"]["default"],
    )
    assert problem.regret(loss_plain) > 0.01, "the ridge stop this test is about moved"
    assert problem.regret(loss_climbed) <= 0.01
    # the same search up to the default stop, then the polls: they are the only extra points
    assert climbed["points"][:n_plain] == plain["points"][:n_plain]
    assert climbed["checks"] - plain["checks"] == n_climbed - n_plain > 0


def test_the_climb_ends_where_no_coarse_neighbour_is_better(climbed: dict) -> None:
    problem = problems.PROBLEMS["nas8"]()
    run = climbed
    n, loss = run["stops"]["default"]
    measured = dict(zip(map(tuple, run["points"][:n]), run["measured"][:n], strict=True))
    best = min(measured, key=measured.get)
    assert problem(best) == loss
    assert coarse_axes(se.spline_optimizer(problem, 0).space) == ["x5", "x7"]  # the two depths
    around = neighbours(problem, best)
    assert len(around) == 4 - sum(best[i] in (problem.lows[i], problem.highs[i]) for i in (5, 7))
    for x in around:
        assert x in measured and measured[x] >= loss


def test_a_climb_on_a_stall_polls_the_best_neighbours_and_leaves_the_ridge() -> None:
    """``nas8`` seed 32, to the budget: without the climb on a stall the search ends at 2 %
    regret with the last depth at 5 blocks where one block less gains 0.4 %. The default (with
    the climb) makes the same points until the best has stalled for the stop rule's window,
    then polls the best's one-level neighbours on the coarse axes, and ends below 1 %."""
    problem = problems.PROBLEMS["nas8"]()
    plain, climbed = (
        se.run_task(se.Task(method, "nas8", False, 32, 80))
        for method in ("default-noclimb", "default")
    )
    assert problem.regret(min(plain["true"])) > 0.01, "the stalled run this test is about moved"
    assert problem.regret(min(climbed["true"])) <= 0.01
    first = next(
        k for k, (a, b) in enumerate(zip(plain["points"], climbed["points"], strict=True)) if a != b
    )
    measured = climbed["measured"][:first]
    window = stall_needed(problem.d)
    tolerance = se.TOLERANCE_FRACTION * problem.span
    assert stall_length([-v for v in measured], tolerance) >= window
    best = tuple(climbed["points"][int(np.argmin(measured))])
    poll = tuple(climbed["points"][first])
    assert poll in neighbours(problem, best)
