"""The trade-off design: the cheapest corner, then points spread over the log cost; bounds hold."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from cost_support import measure_pending, resnet_experiment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.config import parse_experiment
from nas.control.costs import known_cost
from nas.control.policy import Study
from nas.record.store import StateStore
from nas.search.propose import SearchError
from nas.search.space import Dim, SearchSpace
from nas.search.tradeoff import DESIGN_TOP, tradeoff_design

SPACE = SearchSpace([Dim("w", "int", 8, 512), Dim("d", "int", 1, 12), Dim("k", "int", 1, 7)])


def macs(many) -> np.ndarray:
    return np.array([p["w"] ** 2 * p["d"] * p["k"] for p in many], dtype=float)


def test_the_design_starts_at_the_cheapest_corner_and_climbs_the_log_cost() -> None:
    design = tradeoff_design(SPACE, macs, 6, seed=4)
    assert len(design) == 6 and design[0] == {"w": 8, "d": 1, "k": 1}
    costs = np.log(macs(design))
    assert costs[0] == costs.min() and np.corrcoef(np.arange(6), costs)[0, 1] > 0.7, costs
    # the levels stop at the median (log) cost of the box, not at its costliest corner
    box = np.log(macs([SPACE.from_unit(u) for u in np.random.default_rng(0).random((4000, 3))]))
    assert costs.max() <= np.quantile(box, DESIGN_TOP) + 1.0 < box.max()
    assert tradeoff_design(SPACE, macs, 6, seed=4) == design
    assert tradeoff_design(SPACE, macs, 6, seed=5) != design


def test_the_design_leaves_out_what_is_not_admissible_or_has_no_cost() -> None:
    def cost(many) -> np.ndarray:
        values = macs(many)
        return np.where([p["k"] == 3 for p in many], np.nan, values)

    design = tradeoff_design(SPACE, cost, 6, seed=1, admissible=lambda p: p["w"] >= 16)
    assert len(design) == 6
    assert all(p["w"] >= 16 and p["k"] != 3 for p in design)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int], float]:
    low1, low2 = draw(st.integers(2, 20)), draw(st.integers(4, 40))
    g1 = (low1, low1 + draw(st.integers(4, 40)))
    g2 = (low2, low2 + draw(st.integers(4, 60)))
    return g1, g2, draw(st.floats(0.1, 0.9))


@given(boxes())
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_design_point_or_proposal_of_a_tradeoff_search_breaks_a_bound(
    box: tuple[tuple[int, int], tuple[int, int], float],
) -> None:
    g1, g2, share = box
    probe = parse_experiment(resnet_experiment(g1, g2))
    gmacs = known_cost(probe, "gmacs")
    low, high = gmacs({"g1": g1[0], "g2": g2[0]}), gmacs({"g1": g1[1], "g2": g2[1]})
    limit = low + share * (high - low)
    text = resnet_experiment(g1, g2, 'tradeoff = "gmacs"\nbatch_size = 2', f"gmacs = {limit!r}")
    experiment = parse_experiment(text)
    with tempfile.TemporaryDirectory() as folder:
        with StateStore.create(Path(folder) / "s.h5", experiment) as store:
            study = Study(store.state, experiment)
            assert study.initial_batch(), "the cheapest corner is within every bound drawn"
            for _ in range(3):
                measure_pending(study.state)
                try:
                    study.propose()
                except SearchError:  # a small box holds few points within the bound
                    break
            points = store.state.points
    assert all(gmacs(p.params) <= limit for p in points), [(p.origin, p.params) for p in points]
