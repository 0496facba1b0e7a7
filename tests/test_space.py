"""SearchSpace: validation, unit-box mapping, snapping and the 2d+3 initial design."""

import json
import math

import numpy as np
import pytest

from nas.search.space import Dim, SearchSpace, SpaceError


def _space(d: int) -> SearchSpace:
    return SearchSpace([Dim(f"x{k}", "float", 0.0, 10.0 + k) for k in range(d)])


MIXED = SearchSpace(
    [
        Dim("width", "int", 8, 64, log=True),
        Dim("depth", "int", 1, 4),
        Dim("mult", "float", 0.25, 2.0),
        Dim("block", "categorical", choices=("basic", "bottleneck")),
        Dim("groups", "categorical", choices=(1, 32)),
    ]
)


@pytest.mark.parametrize("d", range(3, 9))
def test_initial_design_is_2d_plus_3(d: int) -> None:
    space = _space(d)
    design = space.initial_design()
    assert len(design) == 2 * d + 3
    unit = space.to_unit_many(design)
    np.testing.assert_array_equal(unit[0], np.ones(d))
    np.testing.assert_array_equal(unit[1], np.zeros(d))
    np.testing.assert_allclose(unit[2], np.full(d, 0.5))
    np.testing.assert_array_equal(unit[3 : 3 + d], 1.0 - np.eye(d))
    np.testing.assert_array_equal(unit[3 + d :], np.eye(d))
    assert len({space.key(p) for p in design}) == len(design)


def test_initial_design_d2_is_square_corners_and_centre() -> None:
    unit = _space(2).to_unit_many(_space(2).initial_design())
    np.testing.assert_allclose(unit, [[1, 1], [0, 0], [0.5, 0.5], [0, 1], [1, 0]])


def test_initial_design_d1_dedupes_corners() -> None:
    space = SearchSpace([Dim("n", "int", 1, 4)])
    assert space.initial_design() == [{"n": 4}, {"n": 1}, {"n": 3}]


def test_initial_design_per_category_combination() -> None:
    design = MIXED.initial_design()
    assert len(design) == 4 * (2 * 3 + 3)
    assert MIXED.categories() == [
        ("basic", 1),
        ("basic", 32),
        ("bottleneck", 1),
        ("bottleneck", 32),
    ]
    assert {MIXED.category_of(p) for p in design} == set(MIXED.categories())
    centre = design[2]
    assert centre == {"width": 23, "depth": 3, "mult": 1.125, "block": "basic", "groups": 1}
    assert all(type(p["width"]) is int and type(p["mult"]) is float for p in design)


def test_unit_mapping_round_trip_with_log() -> None:
    params = {"width": 16, "depth": 2, "mult": 1.0, "block": "bottleneck", "groups": 32}
    unit = MIXED.to_unit(params)
    assert unit[0] == pytest.approx(math.log(16 / 8) / math.log(64 / 8))
    assert unit[1] == pytest.approx(1 / 3)
    assert MIXED.from_unit(unit, ("bottleneck", 32)) == params


def test_snap_rounds_clips_and_checks_choices() -> None:
    snapped = MIXED.snap({"width": 70.2, "depth": 2.5, "mult": -3, "block": "basic", "groups": 1})
    assert snapped == {"width": 64, "depth": 3, "mult": 0.25, "block": "basic", "groups": 1}
    assert type(snapped["mult"]) is float
    with pytest.raises(
        SpaceError, match=r"'block' = 'wide' is not one of \['basic', 'bottleneck'\]"
    ):
        MIXED.snap({"width": 8, "depth": 1, "mult": 1.0, "block": "wide", "groups": 1})
    with pytest.raises(SpaceError, match=r"missing \['groups'\], unknown \['color'\]"):
        MIXED.snap({"width": 8, "depth": 1, "mult": 1.0, "block": "basic", "color": 1})
    with pytest.raises(SpaceError, match="'mult' must be finite"):
        MIXED.snap({"width": 8, "depth": 1, "mult": math.nan, "block": "basic", "groups": 1})


def test_snap_unit_matches_from_unit() -> None:
    x = np.random.default_rng(0).random((50, 3))
    snapped = MIXED.snap_unit(x)
    for row, legal in zip(x, snapped, strict=True):
        np.testing.assert_allclose(
            MIXED.to_unit(MIXED.from_unit(row, ("basic", 1))), legal, atol=1e-12
        )


def test_key_identifies_snapped_points() -> None:
    a = {"width": 16.4, "depth": 2, "mult": 1.0, "block": "basic", "groups": 1}
    b = {"width": 16, "depth": 2.0, "mult": 1.0, "block": "basic", "groups": 1}
    assert MIXED.key(a) == MIXED.key(b)
    assert MIXED.unit_distance(a, b) == 0.0
    c = dict(b, block="bottleneck")
    assert MIXED.unit_distance(b, c) == math.inf


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "9x", "type": "int", "low": 1, "high": 2}, "must match"),
        ({"name": "x", "type": "bool", "low": 1, "high": 2}, "type 'bool' is not one of"),
        ({"name": "x", "type": "int", "low": 3, "high": 3}, "low = 3 must be < high = 3"),
        ({"name": "x", "type": "int", "low": 1.5, "high": 3}, "low = 1.5 is not integral"),
        (
            {"name": "x", "type": "float", "low": 0.0, "high": 1.0, "log": True},
            "log scale needs low > 0",
        ),
        ({"name": "x", "type": "float", "low": 0.0, "high": math.inf}, "high must be finite"),
        ({"name": "c", "type": "categorical", "choices": ()}, "at least 2 choices"),
        (
            {"name": "c", "type": "categorical", "choices": ("a",)},
            r"at least 2 choices, got \['a'\]",
        ),
        ({"name": "c", "type": "categorical", "choices": ("a", "a")}, "not distinct"),
        (
            {"name": "c", "type": "categorical", "low": 0, "choices": ("a",)},
            "takes no low/high/log",
        ),
    ],
)
def test_dim_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        Dim(**kwargs)


def test_space_validation() -> None:
    with pytest.raises(SpaceError, match=r"duplicate dimension names: \['a'\]"):
        SearchSpace([Dim("a", "int", 0, 1), Dim("a", "float", 0, 1)])
    with pytest.raises(SpaceError, match="at least one numeric"):
        SearchSpace([Dim("c", "categorical", choices=("a", "b"))])


def test_with_bounds_grows_the_box() -> None:
    grown = MIXED.with_bounds("depth", high=8)
    assert grown.dims[1] == Dim("depth", "int", 1, 8)
    assert grown.dims[0] == MIXED.dims[0]
    with pytest.raises(SpaceError, match="'block' is categorical"):
        MIXED.with_bounds("block", low=0)
    with pytest.raises(SpaceError, match="unknown dimension 'nope'"):
        MIXED.with_bounds("nope", low=0)


def test_dict_round_trip_through_json() -> None:
    data = json.loads(json.dumps(MIXED.to_dict()))
    assert SearchSpace.from_dict(data) == MIXED
    with pytest.raises(SpaceError, match=r"dims\[0\]: unknown keys \['step'\]"):
        SearchSpace.from_dict(
            {"dims": [{"name": "a", "type": "int", "low": 0, "high": 1, "step": 2}]}
        )


@pytest.mark.parametrize(("low", "high"), [(1e-3, 0.5), (1e-4, 1e-1), (3e-5, 7.0)])
def test_a_face_of_a_log_box_is_its_bound_exactly(low: float, high: float) -> None:
    """exp(log(0.5)) is 0.49999999999999994: a design corner reached the command as that,
    and ``add lr=0.5`` made a twin beside it."""
    space = SearchSpace([Dim("lr", "float", low, high, log=True), Dim("w", "int", 8, 128)])
    corners = [p["lr"] for p in space.initial_design() if p["lr"] in (low, high)]
    assert sorted(set(corners)) == [low, high]
    assert space.from_unit([1.0, 0.5])["lr"] == high and space.from_unit([0.0, 0.5])["lr"] == low
    assert space.from_unit([1.5, 0.5])["lr"] == high  # clipped to the face, then exact
    assert np.all(space.snap_unit(np.array([[1.0, 1.0], [0.0, 0.0]])) == [[1, 1], [0, 0]])
