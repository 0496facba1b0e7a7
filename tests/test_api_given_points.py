"""What the ask/tell API does with points a caller gives to ``predict`` and ``design=``,
and with categorical choices listed with numpy.

Each rule here was a silent change of a caller's input: ``predict`` at width 300
answered for the bound 256, a design point beyond the box was trained at the
bound, and choices from ``np.arange`` were refused as neither str, int nor float.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nas.search.optimizer import SplineOptimizer
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace, SpaceError

SPACE = SearchSpace([Dim("width", "int", low=16, high=256), Dim("mult", "float", 0.5, 2.0)])


def plane(params: dict) -> float:
    return params["width"] / 100 + params["mult"]


def fitted() -> SplineOptimizer:
    opt = SplineOptimizer(SPACE, SearchSettings(seed=0))
    while opt.n_measured < 10:
        for params in opt.ask():
            opt.tell(params, plane(params))
    return opt


def test_predict_outside_the_box_is_refused_and_names_extrapolate() -> None:
    opt = fitted()
    with pytest.raises(SpaceError, match=r"width=300 outside the box .*extrapolate=True"):
        opt.predict({"width": 300, "mult": 1.0})
    at_bound = opt.predict({"width": 256, "mult": 1.0})
    beyond = opt.predict({"width": 300, "mult": 1.0}, extrapolate=True)
    assert beyond == pytest.approx(plane({"width": 300, "mult": 1.0}), abs=0.05)
    assert beyond > at_bound + 0.3  # not the bound's answer


def test_predict_warns_where_snapping_moves_a_value() -> None:
    opt = fitted()
    with pytest.warns(UserWarning, match=r"predict: width=100.4 evaluated at 100"):
        value = opt.predict({"width": 100.4, "mult": 1.0})
    assert value == opt.predict({"width": 100, "mult": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.predict({"width": 100, "mult": 1.0})  # a legal point: no warning


def test_predict_interval_checks_its_points_as_predict_does() -> None:
    opt = fitted()
    inside = {"width": 100, "mult": 1.0}
    with pytest.raises(SpaceError, match=r"width=300 outside the box .*extrapolate=True"):
        opt.predict_interval([inside, {"width": 300, "mult": 1.0}])
    with pytest.warns(UserWarning, match=r"predict_interval: width=100.4 evaluated at 100"):
        values, errors = opt.predict_interval([{"width": 100.4, "mult": 1.0}])
    assert values[0] == opt.predict(inside)
    beyond, _ = opt.predict_interval([{"width": 300, "mult": 1.0}], extrapolate=True)
    assert beyond[0] == opt.predict({"width": 300, "mult": 1.0}, extrapolate=True)
    assert np.isfinite(errors).all()


def test_a_given_design_outside_the_box_is_refused_not_clipped() -> None:
    with pytest.raises(SpaceError, match=r"width=1000 outside the box"):
        SplineOptimizer(SPACE, SearchSettings(), design=[{"width": 1000, "mult": 1.0}])
    with pytest.warns(UserWarning, match=r"design: width=20.6 stored as 21"):
        opt = SplineOptimizer(SPACE, SearchSettings(), design=[{"width": 20.6, "mult": 1.0}])
    assert opt.initial_design() == [{"width": 21, "mult": 1.0}]


@pytest.mark.parametrize(
    "choices, plain",
    [
        (np.arange(2, 5), (2, 3, 4)),
        (np.array([0.5, 1.5], dtype=np.float32), (0.5, 1.5)),
        (np.array(["basic", "bottleneck"]), ("basic", "bottleneck")),
    ],
)
def test_numpy_choices_are_held_as_python_values(choices: np.ndarray, plain: tuple) -> None:
    dim = Dim("block", "categorical", choices=tuple(choices))
    assert dim.choices == plain
    assert [type(c) for c in dim.choices] == [type(c) for c in plain]
    space = SearchSpace([dim, Dim("width", "int", 16, 64)])
    assert space.snap({"block": choices[1], "width": 32})["block"] == plain[1]


def test_a_numpy_bool_is_not_a_choice() -> None:
    space = SearchSpace([Dim("groups", "categorical", choices=(1, 2)), Dim("w", "int", 1, 9)])
    with pytest.raises(SpaceError, match="is not one of"):
        space.snap({"groups": np.True_, "w": 3})
    with pytest.raises(SpaceError, match="must be a str, int or float"):
        Dim("flag", "categorical", choices=(np.True_, np.False_))
