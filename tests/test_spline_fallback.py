"""The smoothing fallback: only where it misses the data by less than the exact solve."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import RBFInterpolator

from nas.search.spline import PolyharmonicSpline, kernel_matrix, residual_limit, solve_system

GRID = np.linspace(0.0, 1.0, 2001)[:, None]


def _points(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((120, 1))  # pairs as close as ~1e-5: ill-conditioned


@pytest.mark.parametrize("seed", range(4))
def test_scipy_agrees_to_1e9_of_the_range_on_120_random_1d_points(seed: int) -> None:
    x = _points(seed)
    y = 10.0 * np.sin(6.0 * x[:, 0])
    ours = PolyharmonicSpline(x, y)
    ref = RBFInterpolator(x, y, kernel="cubic", degree=1)
    assert ours.smoothing_used == 0.0
    assert np.max(np.abs(ours(GRID) - ref(GRID))) <= 1e-9 * np.ptp(y)


def rounding_floor(spline: PolyharmonicSpline) -> float:
    """eps * max_i sum_j |c_j phi_ij|: how finely the interpolant can be evaluated at its
    own points in double precision (the rounding of the kernel sum; Higham, ch. 3).
    With huge coefficients it exceeds the residual limit, and no solver resolves that."""
    phi = kernel_matrix(spline._centred)
    return float(np.finfo(float).eps * np.max(phi @ np.abs(spline._weights)))


@pytest.mark.parametrize("seed", range(1, 9))
def test_noisy_data_keeps_the_exact_solve_as_scipy_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _points(seed)
    y = 10.0 * rng.standard_normal(120)  # sd 10: huge coefficients, condition ~1e12
    ours = PolyharmonicSpline(x, y)
    ref = RBFInterpolator(x, y, kernel="cubic", degree=1)
    ours_residual = np.max(np.abs(ours(x) - y))
    ref_residual = np.max(np.abs(ref(x) - y))
    floor = rounding_floor(ours)
    assert ours.smoothing_used == 0.0  # smoothing would miss these data by far more
    if ref_residual + floor <= residual_limit(y):
        # where scipy is accurate with room for rounding, so are we, without a note
        assert ours_residual <= residual_limit(y) and ours.conditioning == ""
    else:  # where it is not, the exact solve is still kept (a note says so when) and no worse
        assert ours_residual <= ref_residual + floor  # than scipy's, up to rounding
        assert ours.conditioning == "" or "kept" in ours.conditioning
    # both interpolate; they differ by no more than their own residuals allow
    assert np.max(np.abs(ours(x) - ref(x))) <= ours_residual + ref_residual


def test_smoothing_is_used_only_where_it_misses_the_data_by_less() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.random((12, 2)), rng.random(12)
    x[5] = x[1] + 1e-13  # two points nearly coincide with other values
    spline = PolyharmonicSpline(x, y)
    assert spline.smoothing_used > 0.0 and "smoothed" in spline.conditioning
    centred, scale = spline._centred, spline._poly_scale
    exact = solve_system(centred, y, 0.0, scale)
    smoothed = solve_system(centred, y, spline.smoothing_used / spline._radius**3, scale, 0.0)
    assert not isinstance(smoothed, str)
    assert isinstance(exact, str) or smoothed[2] < exact[2]
    misfit = np.max(np.abs(spline(x) - y))
    assert misfit == pytest.approx(smoothed[2], rel=1e-6, abs=1e-12)
