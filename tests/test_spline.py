"""PolyharmonicSpline: agreement with scipy, exactness, diagnostics, leave-one-out."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import RBFInterpolator
from scipy.spatial.distance import cdist

from nas.search.spline import (
    MAX_SUPPORT,
    RESIDUAL_RTOL,
    Factorization,
    PolyharmonicSpline,
    SplineError,
    kernel_matrix,
    solve_stable,
)


def _data(d: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    return x, np.sin(3.0 * x).sum(axis=1) + x[:, 0] ** 2


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize(
    ("d", "n"),
    [
        (1, 2),
        (1, 50),
        (2, 3),
        (2, 7),
        (3, 40),
        (5, 6),
        (8, 19),
        (8, 40),
        (12, 13),
        (12, 27),
        (4, 200),
        (12, 200),
    ],
)
@pytest.mark.parametrize("smoothing", [0.0, 1e-2])
def test_equals_scipy_cubic_rbf(d: int, n: int, smoothing: float) -> None:
    x, y = _data(d, n)
    z = np.random.default_rng(1).random((500, d))
    ours = PolyharmonicSpline(x, y, smoothing)(z)
    ref = RBFInterpolator(x, y, kernel="cubic", degree=1, smoothing=smoothing)(z)
    assert _rel(ours, ref) < 1e-9


@pytest.mark.parametrize(("d", "n"), [(1, 5), (3, 9), (8, 40)])
def test_interpolates_support_points(d: int, n: int) -> None:
    x, y = _data(d, n)
    np.testing.assert_allclose(PolyharmonicSpline(x, y)(x), y, rtol=0, atol=1e-10)


def test_smoothing_relation_holds_at_support_points() -> None:
    x, y = _data(3, 20)
    spline = PolyharmonicSpline(x, y, smoothing=0.5)
    np.testing.assert_allclose(spline(x) + 0.5 * spline.coefficients, y, atol=1e-10)
    assert np.max(np.abs(spline(x) - y)) > 1e-3


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 6),
    extra=st.integers(0, 10),
    a=st.lists(st.floats(-5, 5), min_size=7, max_size=7),
)
def test_reproduces_linear_functions(d: int, extra: int, a: list[float]) -> None:
    x, _ = _data(d, d + 1 + extra, seed=extra)
    y = a[0] + x @ np.array(a[1 : d + 1])
    spline = PolyharmonicSpline(x, y)
    # The kernel weights of a linear function vanish up to the rounding of an
    # ill-conditioned system (about cond x eps, ~1e-9 for 11 points in d = 1);
    # the function itself must still be reproduced to 1e-9.
    np.testing.assert_allclose(spline.coefficients, 0.0, atol=1e-7)
    np.testing.assert_allclose(spline.poly, [a[0], *a[1 : d + 1]], atol=1e-9)
    z = np.random.default_rng(2).random((50, d))
    np.testing.assert_allclose(spline(z), a[0] + z @ np.array(a[1 : d + 1]), atol=1e-9)


def test_chunked_equals_unchunked() -> None:
    x, y = _data(5, 30)
    spline = PolyharmonicSpline(x, y)
    z = np.random.default_rng(3).random((1001, 5))
    whole = spline(z, memory_budget=2**30)
    tiny = spline(z, memory_budget=1)
    odd = spline(z, memory_budget=8 * 70 * 7)  # 7 rows per chunk: a ragged last chunk
    np.testing.assert_allclose(tiny, whole, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(odd, whole, rtol=1e-14, atol=1e-14)


def test_single_point_evaluation() -> None:
    x, y = _data(3, 10)
    spline = PolyharmonicSpline(x, y)
    assert spline(x[4]).shape == ()
    assert float(spline(x[4])) == pytest.approx(y[4], abs=1e-12)
    with pytest.raises(ValueError, match=r"shape \(M, 3\)"):
        spline(np.zeros((2, 4)))


def test_duplicate_points_are_named() -> None:
    x, y = _data(2, 8)
    x[6] = x[2]
    with pytest.raises(SplineError, match="points 2 and 6 coincide") as info:
        PolyharmonicSpline(x, y)
    assert info.value.indices == (2, 6)
    PolyharmonicSpline(x, y, smoothing=1e-3)  # repeated measurements are fine when smoothing


def test_affinely_degenerate_points_raise() -> None:
    x, y = _data(3, 10)
    x[:, 1] = 0.25
    with pytest.raises(SplineError, match=r"dimension 2 < d = 3.*coordinates \[1\] are constant"):
        PolyharmonicSpline(x, y)
    t = np.linspace(0, 1, 6)[:, None]
    line = np.hstack([t, 2 * t])  # collinear in 2-D
    with pytest.raises(SplineError, match="fewer than d\\+1 affinely independent") as info:
        PolyharmonicSpline(line, t[:, 0])
    assert info.value.indices == tuple(range(6))


def test_too_close_points_are_smoothed_and_named() -> None:
    x, y = _data(2, 8)
    x[5] = x[1] + 1e-13
    spline = PolyharmonicSpline(x, y)
    assert spline.smoothing_used > 0.0
    assert "closest support points 1 and 5" in spline.conditioning
    assert np.max(np.abs(spline(x) - y)) < 1e-3 * np.ptp(y) + abs(y[1] - y[5])


def test_an_accurate_exact_solve_of_ill_conditioned_data_is_kept() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1)), 100.0 * rng.random(40)  # noisy data, two points 1.6e-4 apart
    spline = PolyharmonicSpline(x, y)
    assert spline.smoothing_used == 0.0 and spline.conditioning == ""
    assert np.max(np.abs(spline(x) - y)) <= RESIDUAL_RTOL * np.ptp(y)


@pytest.mark.parametrize("factor", [1e3, 1e-3])
def test_rank_test_does_not_depend_on_units(factor: float) -> None:
    x, y = _data(3, 30)
    z = np.random.default_rng(5).random((50, 3))
    scaled = PolyharmonicSpline(factor * x, y)
    assert scaled.smoothing_used == 0.0
    np.testing.assert_allclose(scaled(factor * z), PolyharmonicSpline(x, y)(z), atol=1e-9)


def test_gradient_matches_finite_differences() -> None:
    x, y = _data(3, 15)
    spline = PolyharmonicSpline(50.0 * x, y)
    at = 50.0 * np.random.default_rng(6).random((4, 3))
    step = 1e-5 * 50.0
    numeric = np.array(
        [
            [(spline(p + step * e) - spline(p - step * e)) / (2 * step) for e in np.eye(3)]
            for p in at
        ]
    )
    np.testing.assert_allclose(spline.gradient(at), numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(spline.gradient(at[0]), numeric[0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("points", "values", "smoothing", "message"),
    [
        (np.zeros(3), np.zeros(3), 0.0, "2-D array"),
        (np.zeros((3, 2)), np.zeros(4), 0.0, r"shape \(3,\)"),
        (np.array([[0.0, np.nan], [1, 0], [0, 1]]), np.zeros(3), 0.0, r"points \[0\] have NaN"),
        (np.eye(3)[:, :2], np.array([0.0, np.inf, 1.0]), 0.0, r"values at points \[1\]"),
        (np.eye(3)[:2], np.zeros(2), 0.0, "at least d\\+1 = 4 points"),
        (np.eye(3)[:, :2], np.zeros(3), -1.0, "smoothing must be"),
    ],
)
def test_input_validation(points, values, smoothing, message) -> None:
    with pytest.raises(SplineError, match=message):
        PolyharmonicSpline(points, values, smoothing)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loo_errors_equal_refits(smoothing: float) -> None:
    x, y = _data(3, 12)
    spline = PolyharmonicSpline(x, y, smoothing)
    refits = []
    for i in range(12):
        keep = np.arange(12) != i
        refits.append(y[i] - PolyharmonicSpline(x[keep], y[keep], smoothing)(x[i]))
    np.testing.assert_allclose(spline.loo_errors(), refits, atol=1e-10)
    assert spline.loo_rmse == pytest.approx(np.sqrt(np.mean(np.square(refits))))


def test_loo_undefined_with_minimal_support() -> None:
    x, y = _data(3, 4)
    assert np.isnan(PolyharmonicSpline(x, y).loo_errors()).all()


def test_scale_invariance_of_the_interpolant() -> None:
    x, y = _data(3, 15)
    z = np.random.default_rng(4).random((100, 3))
    np.testing.assert_allclose(
        PolyharmonicSpline(x, 7.0 * y)(z), 7.0 * PolyharmonicSpline(x, y)(z), rtol=1e-10
    )


def _augmented(x: np.ndarray, y: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """The dense augmented system, built from its definition."""
    n, d = x.shape
    a = np.zeros((n + d + 1, n + d + 1))
    a[:n, :n] = cdist(x, x) ** 3 + smoothing * np.eye(n)
    a[:n, n] = a[n, :n] = 1.0
    a[:n, n + 1 :] = x
    a[n + 1 :, :n] = x.T
    return a, np.concatenate([y, np.zeros(d + 1)])


@pytest.mark.parametrize(("d", "n", "smoothing"), [(1, 30, 0.0), (3, 60, 0.0), (8, 120, 1e-3)])
def test_one_factorization_gives_the_dense_solution_and_inverse_diagonal(
    d: int, n: int, smoothing: float
) -> None:
    x, y = _data(d, n, seed=d)
    a, b = _augmented(x - 0.5, y, smoothing)
    inverse = np.linalg.inv(a)
    fact = Factorization(x - 0.5, smoothing, np.ones(d))
    z, residual = fact.solve(y)
    dense = np.linalg.solve(a, b)
    # two backward-stable solves agree to about cond(A) * eps of the solution (Higham,
    # Accuracy and Stability of Numerical Algorithms, 2nd ed., ch. 7): a fixed 1e-8 held on
    # one BLAS kernel and not on another for the 1-d case (cond 1.4e8, differences 1.2e-8)
    bound = 10.0 * np.linalg.cond(a, 1) * np.finfo(float).eps
    assert np.linalg.norm(z - dense, 1) <= bound * np.linalg.norm(dense, 1)
    assert residual == pytest.approx(np.max(np.abs(a @ z - b)), rel=0.5, abs=1e-12)
    exact = 1.0 / (np.linalg.norm(a, 1) * np.linalg.norm(inverse, 1))
    assert fact.rcond > exact / 10.0  # M is no worse conditioned than the augmented matrix
    np.testing.assert_allclose(fact.inverse_diagonal(), np.diag(inverse)[:n], rtol=1e-8, atol=1e-12)
    assert fact.factor is None  # the buffer was inverted in place and released
    assert not fact.singular


def test_a_singular_system_is_named_by_the_condition_estimate() -> None:
    x, y = _data(2, 10)
    x[7] = x[3]  # two equal rows and columns
    assert Factorization(x - 0.5, 0.0, np.ones(2)).singular
    with pytest.raises(SplineError, match="points 3 and 7 coincide"):
        solve_stable(x - 0.5, y, 0.0, np.ones(2))


@pytest.mark.parametrize("smoothing", [0.0, 0.05])
def test_loo_errors_equal_refits_on_a_larger_support(smoothing: float) -> None:
    x, y = _data(4, 60, seed=3)
    spline = PolyharmonicSpline(x, y, smoothing)
    refits = [
        y[i] - PolyharmonicSpline(np.delete(x, i, 0), np.delete(y, i), smoothing)(x[i])
        for i in range(60)
    ]
    np.testing.assert_allclose(spline.loo_errors(), refits, rtol=1e-8, atol=1e-8 * np.ptp(y))


def test_kernel_matrix_equals_its_definition() -> None:
    x = 2.0 * np.random.default_rng(2).random((50, 7)) - 1.0
    phi = kernel_matrix(x)
    np.testing.assert_allclose(phi, cdist(x, x) ** 3, rtol=1e-12, atol=1e-14)
    assert (np.diag(phi) == 0.0).all()


def test_more_support_points_than_the_limit_are_refused_before_any_work() -> None:
    x = np.random.default_rng(0).random((MAX_SUPPORT + 1, 2))
    with pytest.raises(SplineError, match=f"{MAX_SUPPORT + 1:,} support points exceed") as info:
        PolyharmonicSpline(x, x[:, 0])
    assert "narrower box" in str(info.value) and info.value.indices == ()
