"""The spline's gradient is evaluated in chunks: the same numbers, bounded temporaries."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from nas.search.spline import PolyharmonicSpline


def _spline(n: int, d: int, seed: int = 0) -> PolyharmonicSpline:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    return PolyharmonicSpline(x, np.sin(3.0 * x).sum(axis=1) + x[:, 0] ** 2)


def _by_definition(spline: PolyharmonicSpline, x: np.ndarray) -> np.ndarray:
    """``3 sum_j c_j |x - x_j| (x - x_j) + a`` in the caller's coordinates, all at once."""
    diff = x[:, None, :] - spline.points[None, :, :]
    r = np.linalg.norm(diff, axis=2)
    return 3.0 * np.einsum("mn,mnk->mk", r * spline.coefficients, diff) + spline.poly[1:]


@pytest.mark.parametrize("budget", [1, 2**12, 2**19, 2**30])
def test_chunked_gradient_equals_the_definition(budget: int) -> None:
    spline = _spline(60, 3)
    x = np.random.default_rng(1).random((257, 3))
    x[:5] = spline.points[:5]  # at a support point the kernel's gradient vanishes exactly
    got = spline.gradient(x, memory_budget=budget)
    want = _by_definition(spline, x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_chunk_size_does_not_change_the_gradient() -> None:
    spline = _spline(200, 4)
    x = np.random.default_rng(2).random((1000, 4))
    one_row = spline.gradient(x, memory_budget=1)
    np.testing.assert_allclose(spline.gradient(x), one_row, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(spline.gradient(x[7]), one_row[7])


def test_gradient_temporaries_do_not_grow_with_the_points_asked_for() -> None:
    spline = _spline(500, 6)
    x = np.random.default_rng(3).random((4000, 6))  # M x N x d would be 96 MB
    spline.gradient(x[:10])  # warm caches outside the measurement
    tracemalloc.start()
    try:
        spline.gradient(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20 + x.nbytes
