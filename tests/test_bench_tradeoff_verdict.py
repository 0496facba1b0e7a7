"""The trade-off benchmark's acceptance line: decided from the longest cached runs, or not at all.

A median known only as "more than its budget" bounds the ratio from one side;
the line says met or missed only where the bound decides, and never names a
best peer among peers that all missed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tradeoff  # noqa: E402
from tradeoff import Evals, _longest, _verdict  # noqa: E402

INF = math.inf


def test_ours_against_peers_that_all_miss_their_budget_is_met_only_below_the_ratio() -> None:
    peers = [Evals("random", 200, [INF] * 10), Evals("motpe", 200, [105.0] * 3 + [INF] * 7)]
    line = _verdict("nas5", Evals("spline-front", 60, [46.0] * 6 + [INF] * 4), peers)
    assert "no peer gets there (random > 200, motpe > 200)" in line
    assert line.endswith("met: ratio below 0.23") and "best peer" not in line
    # the same peers run for 60 only: 46 against "more than 60" decides nothing
    short = [Evals(e.method, 60, e.seeds) for e in peers]
    line = _verdict("nas5", Evals("spline-front", 60, [46.0] * 10), short)
    assert line.endswith("not shown: neither median is known well enough to decide")


def test_a_known_peer_median_decides_either_way() -> None:
    peer = [Evals("motpe", 200, [100.0] * 10)]
    assert _verdict("p", Evals("spline-front", 60, [50.0] * 10), peer).endswith("met: ratio 0.50")
    assert _verdict("p", Evals("spline-front", 90, [80.0] * 10), peer).endswith(
        "missed: ratio 0.80"
    )
    # ours never got there within 80: the ratio is above 0.8 whatever it is
    line = _verdict("p", Evals("spline-front", 80, [INF] * 10), peer)
    assert line.endswith("missed: ratio above 0.80")
    # within 60 only: the ratio may still be below 0.7
    line = _verdict("p", Evals("spline-front", 60, [INF] * 10), peer)
    assert line.endswith("not shown: neither median is known well enough to decide")


def test_the_verdict_reads_the_longest_runs_that_cover_every_seed() -> None:
    runs = {
        tradeoff._key("nas5", "motpe", seed, budget): {"told": [[budget]], "seconds": 0.0}
        for seed in range(3)
        for budget in (60, 200)
    }
    runs[tradeoff._key("nas5", "motpe", 0, 400)] = {
        "told": [[400]],
        "seconds": 0.0,
    }  # one seed only

    def score(told):  # a run reaches 95 % at its budget's tenth
        return np.array([0.0] * (told[0][0] // 10 - 1) + [1.0])

    found = _longest(runs, "nas5", "motpe", 3, score)
    assert found is not None and (found.budget, found.median) == (200, 20.0)
    assert _longest(runs, "nas5", "nsga2", 3, score) is None
