"""Non-dominated sets, 2-d hypervolume and the leave-one-out error rule, against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.search.pareto import hypervolume, hypervolume_gain, nondominated, reference_point
from nas.search.spline import PolyharmonicSpline
from nas.search.uncertainty import local_error

values = st.lists(
    st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=12
)  # small integers: ties happen


def dominated(i: int, m: np.ndarray, c: np.ndarray) -> bool:
    return any(
        m[j] >= m[i] and c[j] <= c[i] and (m[j] > m[i] or c[j] < c[i]) for j in range(len(m))
    )


@given(values)
@settings(max_examples=200, deadline=None)
def test_nondominated_is_the_brute_force_set(pairs: list[tuple[int, int]]) -> None:
    m, c = np.array(pairs, dtype=float).T
    keep = nondominated(m, c)
    expected = {(m[i], c[i]) for i in range(len(m)) if not dominated(i, m, c)}
    assert {(m[i], c[i]) for i in keep} == expected
    assert len(keep) == len(expected), "twins are kept once"
    assert list(c[keep]) == sorted(c[keep])


@given(values)
@settings(max_examples=100, deadline=None)
def test_minimize_is_maximize_of_the_negated_metric(pairs: list[tuple[int, int]]) -> None:
    m, c = np.array(pairs, dtype=float).T
    assert list(nondominated(m, c, "minimize")) == list(nondominated(-m, c, "maximize"))


@given(values)
@settings(max_examples=100, deadline=None)
def test_hypervolume_counts_the_dominated_cells(pairs: list[tuple[int, int]]) -> None:
    m, c = np.array(pairs, dtype=float).T
    reference = (-1.0, 9.0)
    cells = 0  # unit cells [a, a+1] x [b, b+1] of (metric, cost) dominated by some point
    for a in range(-1, 9):
        for b in range(0, 9):
            cells += any(m[i] >= a + 1 and c[i] <= b for i in range(len(m)))
    assert hypervolume(m, c, reference) == pytest.approx(cells)


@given(values, st.tuples(st.integers(0, 8), st.integers(0, 8)))
@settings(max_examples=100, deadline=None)
def test_gain_is_the_difference_of_hypervolumes(
    pairs: list[tuple[int, int]], new: tuple[int, int]
) -> None:
    m, c = np.array(pairs, dtype=float).T
    reference = (-1.0, 9.0)
    gain = hypervolume_gain(m, c, np.array([new[0]]), np.array([new[1]]), reference)[0]
    after = hypervolume(np.append(m, new[0]), np.append(c, new[1]), reference)
    assert gain == pytest.approx(after - hypervolume(m, c, reference))


def test_reference_is_the_worst_corner() -> None:
    assert reference_point([1.0, 3.0], [5.0, 2.0]) == (1.0, 5.0)
    assert reference_point([1.0, 3.0], [5.0, 2.0], "minimize") == (3.0, 5.0)
    with pytest.raises(ValueError, match="no finite"):
        reference_point([math.nan], [1.0])


def test_nan_points_take_no_part() -> None:
    assert list(nondominated([1.0, math.nan, 2.0], [1.0, 0.0, math.nan])) == [0]


def test_local_error_is_the_rms_of_the_nearest_leave_one_out_errors_scaled_by_distance() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((12, 2))
    spline = PolyharmonicSpline(x, np.sin(3 * x[:, 0]) + x[:, 1] ** 2)
    loo = spline.loo_errors()
    at = np.array([[0.5, 0.5], [0.0, 1.0]])
    got = local_error(spline, at)
    spacing = [min(np.linalg.norm(x[i] - x[j]) for j in range(12) if j != i) for i in range(12)]
    for row, value in zip(at, got, strict=True):
        distance = np.linalg.norm(x - row, axis=1)
        nearest = np.argsort(distance)[:3]
        scaled = [loo[j] * (distance.min() / spacing[j]) ** 2 for j in nearest]
        assert value == pytest.approx(np.sqrt(np.mean(np.square(scaled))))
    assert local_error(spline, at[0]) == pytest.approx(got[0])
    assert np.all(local_error(spline, x) == 0.0), "the spline interpolates its data"


def test_local_error_is_unknown_without_defined_leave_one_out_errors() -> None:
    spline = PolyharmonicSpline(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.ones(3))
    assert np.all(np.isinf(local_error(spline, np.array([[0.2, 0.2]]))))
