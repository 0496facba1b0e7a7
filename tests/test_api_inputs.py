"""The Python ask/tell API's inputs: what it refuses, warns of and accepts, and when it raises.

Each rule here was a silent coercion or an endless loop found by a by-hand
probe of the API (clipped or rounded measurements, an inverted feasibility
rule, ``ask()`` returning ``[]`` forever, row numbers read as point ids, a
``True`` stored as the value 1.0).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from experiment_support import FLOAT_BOX, experiment_toml

from nas.config import parse_experiment
from nas.control import policy
from nas.record.state import PointStatus, State
from nas.search.optimizer import SearchStalled, SplineOptimizer
from nas.search.propose import SearchError
from nas.search.settings import SearchSettings
from nas.search.space import Dim, SearchSpace, SpaceError

SPACE = SearchSpace(
    [
        Dim("width", "int", low=16, high=256),
        Dim("depth", "int", low=1, high=8),
        Dim("mult", "float", low=0.5, high=2.0),
    ]
)


def bowl(params: dict) -> float:
    return 80 - ((params["width"] - 150) / 60) ** 2 - (params["depth"] - 5) ** 2


def measured(n: int = 5, **settings: object) -> SplineOptimizer:
    """An optimizer told its first ``n`` design points."""
    opt = SplineOptimizer(SPACE, SearchSettings(seed=0, **settings))
    for params in opt.ask(n):
        opt.tell(params, bowl(params))
    return opt


def readme_loop(opt: SplineOptimizer, measure: Callable[[dict], float]) -> int:
    """The README's ask/tell loop, with a guard: the number of rounds it ran."""
    rounds = 0
    while not opt.converged and opt.n_measured < 40:
        rounds += 1
        assert rounds < 200, f"the loop spins: ask() -> {opt.ask()}"
        for params in opt.ask():
            opt.tell(params, measure(params))
    return rounds


# ------------------------------------------------------------------ params outside the box


@pytest.mark.parametrize("method", ["tell", "mark_pending", "forget_pending"])
def test_a_value_outside_the_box_is_refused_naming_dimension_value_and_box(method: str) -> None:
    opt = measured()
    opt.mark_pending({"width": 256, "depth": 1, "mult": 1.0})
    args = (50.0,) if method == "tell" else ()
    with pytest.raises(SpaceError) as info:
        getattr(opt, method)({"width": 1000, "depth": 1, "mult": 1.0}, *args)
    assert "width=1000" in str(info.value) and "width in [16, 256]" in str(info.value)
    assert opt.pending == [{"width": 256, "depth": 1, "mult": 1.0}]  # not forgotten either
    assert all(r.params["width"] != 256 or r.params["depth"] != 1 for r in opt.history)


def test_a_value_snapped_onto_the_lattice_is_stored_with_a_warning() -> None:
    opt = measured()
    with pytest.warns(UserWarning, match=r"^tell: width=30.4 stored as 30, the nearest integer$"):
        opt.tell({"width": 30.4, "depth": 2, "mult": 1.0}, 52.0)
    assert opt.history[-1].params == {"width": 30, "depth": 2, "mult": 1.0}


def test_the_already_told_error_names_the_params_given_and_those_stored() -> None:
    opt = measured()
    opt.tell({"width": 30, "depth": 2, "mult": 1.0}, 52.0)
    with (
        pytest.warns(UserWarning, match="width=30.4"),
        pytest.raises(ValueError, match="already told") as info,
    ):
        opt.tell({"width": 30.4, "depth": 2, "mult": 1.0}, 53.0)
    text = str(info.value)
    assert "'width': 30.4" in text and "stored as {'width': 30, 'depth': 2" in text


def test_a_search_rebuilt_from_its_history_warns_of_nothing_and_agrees() -> None:
    opt = measured(7, batch_size=2)
    with pytest.warns(RuntimeWarning, match="recorded as a failure"):
        opt.tell(opt.ask(1)[0], math.nan)
    (pending,) = opt.ask(1)
    opt.mark_pending(pending)
    rebuilt = SplineOptimizer(SPACE, SearchSettings(seed=0, batch_size=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for r in opt.history:
            if math.isfinite(r.value):
                rebuilt.tell(r.params, r.value, r.predicted, r.fill, r.check, r.batch, r.poll)
            else:
                with pytest.warns(RuntimeWarning, match="recorded as a failure"):
                    rebuilt.tell(r.params, r.value)
        rebuilt.mark_pending(pending, origin="incremental")
        rebuilt.forget_pending(pending)
        rebuilt.mark_pending(pending, origin="incremental")
    assert rebuilt.suggest() == opt.suggest()


def test_the_controller_rebuilds_its_optimizer_without_a_warning() -> None:
    space = {"x": FLOAT_BOX, "y": {"type": "int", "low": -20, "high": 20}}
    exp = parse_experiment(experiment_toml("bowl", space), "bowl.toml")
    state = State(exp.text, exp.space)
    design = policy.Study(state, exp).initial_batch()
    for point in design[:-2]:
        state.record(point.id, 10.0 - point.params["x"] ** 2 - (point.params["y"] / 10) ** 2)
    state.set_status(design[-2].id, PointStatus.FAILED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer = policy.Study(state, exp).optimizer
    assert optimizer.n_measured == len(design) - 2 and len(optimizer.history) == len(design) - 1
    assert optimizer.pending == [design[-1].params]


# ------------------------------------------------------------------ feasible's answers


@pytest.mark.parametrize("answer", [None, "too big for memory", 1, np.float64(1.0)])
def test_a_feasible_rule_that_returns_no_bool_is_refused_naming_the_convention(
    answer: object,
) -> None:
    with pytest.raises(TypeError) as info:
        SplineOptimizer(SPACE, feasible=lambda params: answer).ask()
    text = str(info.value)
    assert f"got {answer!r}" in text and "must return a bool" in text
    assert "[model] feasible" in text and "is None" in text


def test_a_feasible_rule_may_answer_with_numpy_bools() -> None:
    rule = lambda params: np.bool_(params["width"] * params["depth"] <= 1500)  # noqa: E731
    opt = SplineOptimizer(SPACE, SearchSettings(seed=0), feasible=rule)
    plain = SplineOptimizer(SPACE, SearchSettings(seed=0), feasible=lambda p: bool(rule(p)))
    assert opt.ask(3) == plain.ask(3)
    assert all(p["width"] * p["depth"] <= 1500 for p in opt.ask(3))


def test_maximum_checks_the_rule_it_is_given() -> None:
    opt = measured()
    with pytest.raises(TypeError, match="got None"):
        opt.maximum(lambda params: None)


# ------------------------------------------------------------------ nothing to propose


def test_the_readme_loop_ends_when_feasible_allows_no_point() -> None:
    opt = SplineOptimizer(SPACE, feasible=lambda params: params["width"] > 1000)
    with pytest.raises(SearchStalled, match="a new point that feasible allows") as info:
        readme_loop(opt, bowl)
    assert isinstance(info.value, SearchError)  # the error suggest's docstring promises


def test_the_readme_loop_ends_when_the_design_failed() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=2))
    with (
        pytest.warns(RuntimeWarning, match="recorded as a failure"),
        pytest.raises(SearchStalled, match=r"5 of 5 told points failed.*fix the cause"),
    ):
        readme_loop(opt, lambda params: math.nan)


def test_ask_returns_nothing_while_the_search_waits_for_a_pending_point() -> None:
    opt = SplineOptimizer(SPACE, SearchSettings(batch_size=2))
    design = opt.ask(10)
    with pytest.warns(RuntimeWarning):
        for params in design[:-1]:
            opt.tell(params, math.nan)
    opt.mark_pending(design[-1])
    assert opt.ask() == []  # its measurement may still let the search go on
    with pytest.warns(RuntimeWarning):
        opt.tell(design[-1], math.nan)
    with pytest.raises(SearchStalled, match="5 of 5 told points failed"):
        opt.ask()


# ------------------------------------------------------------------ conditioning warning


def test_the_ill_conditioning_warning_names_the_close_points_by_their_params() -> None:
    space = SearchSpace(
        [Dim("x", "float", low=0.0, high=1.0), Dim("y", "float", low=0.0, high=1.0)]
    )
    opt = SplineOptimizer(space, SearchSettings(warping="off"))
    told = [(0.0, 0.0, 1.0), (0.5, 0.5, 4.0), (0.5 + 1e-13, 0.5, 5.0)]
    told += [(1.0, 0.0, 2.0), (0.0, 1.0, 3.0), (1.0, 1.0, 0.5)]
    for x, y, value in told:
        opt.tell({"x": x, "y": y}, value)
    summary = opt.fit()
    assert summary is not None and len(summary.warnings) == 1
    (warning,) = summary.warnings
    assert "closest support points {'x': 0.5, 'y': 0.5} and {'x': 0.5000000000001" in warning
    assert "points 1 and 2" not in warning


# ------------------------------------------------------------------ types


@pytest.mark.parametrize("value", [True, "70.5", None, np.array([3.5]), np.array(3.5)])
def test_a_value_that_is_no_real_number_is_refused_naming_the_argument(value: object) -> None:
    opt = measured()
    with pytest.raises(TypeError, match=r"^value must be a real number, got "):
        opt.tell({"width": 20, "depth": 2, "mult": 1.0}, value)
    with pytest.raises(TypeError, match=r"^predicted must be a real number, got "):
        opt.tell({"width": 20, "depth": 2, "mult": 1.0}, 50.0, predicted=value or "x")
    assert len(opt.history) == 5


@pytest.mark.parametrize("value", [np.float32(3.5), np.int64(3), 3, 3.5])
def test_numpy_and_python_numbers_are_values(value: object) -> None:
    opt = measured()
    opt.tell({"width": 20, "depth": 2, "mult": 1.0}, value, predicted=np.float64(3.0))
    record = opt.history[-1]
    assert record.value == float(value) and type(record.value) is float
    assert type(record.predicted) is float


@pytest.mark.parametrize("n", [True, 2.0, "2"])
def test_a_count_that_is_no_int_is_refused(n: object) -> None:
    with pytest.raises(TypeError, match="n must be an int >= 1"):
        SplineOptimizer(SPACE).ask(n)


def test_a_numpy_int_is_a_count() -> None:
    assert SplineOptimizer(SPACE).ask(np.int64(2)) == SplineOptimizer(SPACE).ask(2)


def test_numpy_bounds_are_numbers() -> None:
    ints = Dim("x", "int", low=np.int64(1), high=np.int64(5))
    assert (ints.low, ints.high) == (1, 5) and type(ints.low) is int
    floats = Dim("x", "float", low=np.float32(0.25), high=np.float64(1.0))
    assert (floats.low, floats.high) == (0.25, 1.0) and type(floats.low) is float
    with pytest.raises(SpaceError, match="low must be a number, got True"):
        Dim("x", "int", low=True, high=5)


def test_a_nan_choice_is_refused() -> None:
    with pytest.raises(SpaceError, match="choice nan can never be given"):
        Dim("c", "categorical", choices=[float("nan"), 1.0])
