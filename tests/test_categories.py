"""Categories sharing one spline and one design (``categories = "shared"``)."""

import numpy as np
import pytest

from nas.search.categories import CATEGORY_DISTANCE, EmbeddedSpace
from nas.search.design import initial_design
from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace

SPACE = SearchSpace(
    [
        Dim("w", "int", 16, 256),
        Dim("block", "categorical", choices=("basic", "bottleneck")),
        Dim("n", "int", 1, 12),
        Dim("lr", "float", 1e-4, 1e-1, log=True),
    ]
)


def _shape(x: np.ndarray) -> np.ndarray:
    """A smooth landscape over unit points (M, 2)."""
    return -((x[:, 0] - 0.3) ** 2) - 2.0 * (x[:, 1] - 0.6) ** 2 + 0.5 * x[:, 0] * x[:, 1]


def _told(
    space: SearchSpace,
    rows: list[tuple[np.ndarray, str]],
    offset: float,
    categories: str = "shared",
) -> SplineOptimizer:
    """An optimizer told ``_shape`` at ``rows``, category B shifted by ``offset``."""
    opt = SplineOptimizer(space, SearchSettings(categories=categories))
    for x, cat in rows:
        params = space.from_unit(x, (cat,))
        value = float(_shape(space.to_unit(params)[None])[0]) + (offset if cat == "B" else 0.0)
        opt.tell(params, value)
    return opt


PLANE = SearchSpace(
    [
        Dim("u", "float", 0.0, 1.0),
        Dim("v", "float", 0.0, 1.0),
        Dim("c", "categorical", choices=("A", "B")),
    ]
)


def test_shared_spline_reproduces_every_measurement() -> None:
    rng = np.random.default_rng(1)
    rows = [(x, "A") for x in rng.random((8, 2))] + [(x, "B") for x in rng.random((4, 2))]
    opt = _told(PLANE, rows, offset=0.3)
    splines = opt.fit().splines
    for record in opt.history:
        spline = splines[PLANE.category_of(record.params)]
        assert spline(PLANE.to_unit(record.params)) == pytest.approx(record.value, abs=1e-9)
    assert {len(s.points) for s in splines.values()} == {8, 4}


def test_a_few_points_of_a_category_borrow_the_shape_of_the_others() -> None:
    rng = np.random.default_rng(2)
    rows = [(x, "A") for x in rng.random((25, 2))] + [(x, "B") for x in rng.random((3, 2))]
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 9), np.linspace(0, 1, 9)), -1).reshape(-1, 2)
    truth = _shape(grid) + 0.3
    errors = {}
    for categories in ("shared", "separate"):
        opt = _told(PLANE, rows, offset=0.3, categories=categories)
        residual = opt.fit().splines[("B",)](grid) - truth
        errors[categories] = float(np.sqrt(np.mean(residual**2)))
    assert errors["shared"] < 0.05 * np.ptp(truth)
    assert errors["shared"] < errors["separate"] / 5


@pytest.mark.parametrize("kind", ["space-filling", "corners"])
def test_one_design_covers_every_choice_without_repeating_a_numeric_row(kind: str) -> None:
    design = initial_design(SPACE, kind, seed=3, shared=True)
    separate = initial_design(SPACE, kind, seed=3, shared=False)
    assert {p["block"] for p in design} == {"basic", "bottleneck"}
    numeric = [(p["w"], p["n"], p["lr"]) for p in design]
    for block in ("basic", "bottleneck"):
        rows = [row for row, p in zip(numeric, design, strict=True) if p["block"] == block]
        assert len(set(rows)) == len(rows)
    shared_rows = 1 if kind == "corners" else 0  # the centre is measured in both categories
    assert len(set(numeric)) == len(numeric) - shared_rows
    assert len(design) == (SPACE.d + 3 if kind == "space-filling" else 2 * SPACE.d + 4)
    assert len(separate) == 2 * len(set((p["w"], p["n"], p["lr"]) for p in separate))
    assert SplineOptimizer(SPACE, SearchSettings(design=kind, seed=3)).initial_design() == design


@pytest.mark.parametrize("batch_size", [1, 3])
def test_default_strategy_proposes_legal_distinct_points_in_every_category(batch_size: int) -> None:
    def accuracy(p: dict) -> float:
        bonus = 0.02 if p["block"] == "bottleneck" else 0.0
        return 0.8 - ((p["w"] - 150) / 240) ** 2 - ((p["n"] - 4) / 11) ** 2 + bonus

    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=batch_size, design="space-filling"))
    seen, origins = set(), []
    while len(origins) < 14:
        for proposal in opt.suggest():
            params = proposal.params
            assert SPACE.snap(params) == params and SPACE.key(params) not in seen
            seen.add(SPACE.key(params))
            origins.append(proposal.origin)
            opt.tell(params, accuracy(params))
    assert origins.count("initial") == SPACE.d + 3 and "incremental" in origins
    assert opt.fit().splines.keys() == {("basic",), ("bottleneck",)}
    assert {p["block"] for p in (r.params for r in opt.history)} == {"basic", "bottleneck"}


def test_an_unmeasured_choice_falls_back_to_a_spline_per_category() -> None:
    settings = SearchSettings(design="corners")  # its "basic" points alone determine a spline
    opt = SplineOptimizer(SPACE, settings, feasible=lambda p: p["block"] == "basic")
    for p in opt.initial_design():
        if p["block"] == "basic":
            opt.tell(p, p["w"] / 256 - p["n"] / 12)
    assert list(opt.fit().splines) == [("basic",)]
    assert all(p.params["block"] == "basic" for p in opt.suggest(2))


def test_embedded_space_snaps_indicators_to_one_choice_per_dimension() -> None:
    space = SearchSpace(
        [Dim("a", "float", 0.0, 1.0), Dim("c", "categorical", choices=("x", "y", "z"))]
    )
    embedded = EmbeddedSpace(space)
    assert embedded.d == 3
    g = CATEGORY_DISTANCE
    raw = np.array([[0.2, 0.6 * g, 0.7 * g], [0.4, 0.1 * g, 0.3 * g], [1.5, 0.9 * g, 0.2 * g]])
    snapped = embedded.snap_unit(raw)
    assert snapped.tolist() == [[0.2, 0.0, g], [0.4, 0.0, 0.0], [1.0, g, 0.0]]
    for p in ({"a": 0.25, "c": "x"}, {"a": 0.5, "c": "y"}, {"a": 1.0, "c": "z"}):
        assert embedded.from_unit(embedded.to_unit(p)) == p
    neighbours = embedded.lattice_neighbours(np.array([0.3, g, 0.0]))
    assert [embedded.category_at(x) for x in neighbours] == [("y",), ("x",), ("z",)]
