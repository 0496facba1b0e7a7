"""The projected Cholesky factorization of the spline system at sizes the controller reaches."""

import numpy as np
import pytest
from scipy.interpolate import RBFInterpolator

from nas.search.spline import Factorization, PolyharmonicSpline, kernel_matrix


def _data(d: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    return x, np.sin(3.0 * x).sum(axis=1) + x[:, 0] ** 2


@pytest.mark.parametrize(("d", "n"), [(4, 700), (16, 900)])
def test_equals_scipy_at_controller_sizes(d: int, n: int) -> None:
    x, y = _data(d, n)
    z = np.random.default_rng(1).random((300, d))
    ref = RBFInterpolator(x, y, kernel="cubic", degree=1)(z)
    ours = PolyharmonicSpline(x, y)(z)
    assert np.max(np.abs(ours - ref)) / np.max(np.abs(ref)) < 1e-9


def test_loo_errors_equal_rippa_with_the_dense_inverse() -> None:
    x, y = _data(8, 300, seed=4)
    spline = PolyharmonicSpline(x, y)
    v = spline._centred
    n, d = v.shape
    a = np.zeros((n + d + 1, n + d + 1))
    a[:n, :n] = kernel_matrix(v)
    a[:n, n] = a[n, :n] = 1.0
    a[:n, n + 1 :] = v / spline._poly_scale
    a[n + 1 :, :n] = a[:n, n + 1 :].T
    inverse = np.linalg.inv(a)
    z = inverse[:, :n] @ y
    np.testing.assert_allclose(spline.loo_errors(), z[:n] / np.diag(inverse)[:n], rtol=1e-7)


def test_the_factor_overwrites_the_kernel_matrix_and_leaves_phi_above_the_diagonal() -> None:
    x, _ = _data(3, 50)
    v = 2.0 * x - 1.0
    fact = Factorization(v, 0.0, np.ones(3))
    phi = kernel_matrix(v)
    upper = np.triu_indices(50, 1)
    assert fact.factor.flags.f_contiguous
    assert np.shares_memory(fact.factor, fact._phi)  # one N x N buffer, factored in place
    np.testing.assert_allclose(fact.factor[upper], phi[upper], rtol=1e-13)
    fact.inverse_diagonal()
    assert fact.factor is None  # released after the leave-one-out denominators
