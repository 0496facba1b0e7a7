"""Cubic polyharmonic spline with a linear polynomial tail.

The surrogate of the search: it interpolates the measured (architecture ->
metric) points in the unit box. Build, solve and evaluate are separate
functions over arrays; :class:`PolyharmonicSpline` only ties them together.
The function is the one of ``scipy.interpolate.RBFInterpolator(kernel="cubic",
degree=1, smoothing=...)``; the differences are a rank-revealing solve that
refuses unstable systems and a faster chunked evaluation.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

#: Upper bound on the bytes of temporaries one evaluation may allocate.
MEMORY_BUDGET = 64 * 2**20

#: Preferred bytes per evaluation chunk: small enough for the buffers to stay in
#: cache, which is about twice as fast as memory-sized chunks.
CACHE_BYTES = 2**19

#: Relative size of the pivoted-QR diagonal below which the system counts as singular,
#: in units of (system size x machine epsilon), as numpy.linalg.matrix_rank does.
RANK_RTOL_FACTOR = 1.0

#: Largest accepted residual max|A z - b| relative to max|b|. Above it the solution
#: does not reproduce the data to the accuracy the caller relies on.
RESIDUAL_RTOL = 1e-8

_EPS = float(np.finfo(np.float64).eps)


class SplineError(ValueError):
    """A spline that cannot be fitted; ``indices`` names the offending support points."""

    def __init__(self, message: str, indices: tuple[int, ...] | list[int] = ()) -> None:
        super().__init__(message)
        self.indices: tuple[int, ...] = tuple(int(i) for i in indices)


def validate(
    points: np.ndarray, values: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Check the support data and return it as float64 arrays.

    Raises
    ------
    SplineError
        One message per condition: shapes, non-finite entries, too few
        points, negative smoothing, duplicate points without smoothing and
        points that are not affinely spanning.
    """
    x = np.array(points, dtype=np.float64, copy=True)
    y = np.array(values, dtype=np.float64, copy=True)
    if x.ndim != 2 or x.shape[1] == 0:
        raise SplineError(f"points must be a 2-D array (N, d) with d >= 1, got shape {x.shape}")
    n, d = x.shape
    if y.shape != (n,):
        raise SplineError(f"values must have shape ({n},) to match points, got {y.shape}")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise SplineError(f"points {bad.tolist()} have NaN or infinite coordinates", bad)
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise SplineError(f"values at points {bad.tolist()} are NaN or infinite", bad)
    if not (np.isfinite(smoothing) and smoothing >= 0.0):
        raise SplineError(f"smoothing must be a finite number >= 0, got {smoothing!r}")
    if n < d + 1:
        raise SplineError(
            f"at least d+1 = {d + 1} points are required for a linear tail in d = {d} "
            f"dimensions, got {n}"
        )
    if smoothing == 0.0:
        _check_duplicates(x)
    _check_affine_span(x)
    return x, y, float(smoothing)


def _check_duplicates(x: np.ndarray) -> None:
    order = np.lexsort(x.T[::-1])
    same = np.flatnonzero((np.diff(x[order], axis=0) == 0.0).all(axis=1))
    if same.size:
        i, j = sorted((int(order[same[0]]), int(order[same[0] + 1])))
        raise SplineError(
            f"points {i} and {j} coincide at {x[i].tolist()}: interpolation through "
            "duplicate points is singular (use smoothing > 0 for repeated measurements)",
            (i, j),
        )


def _check_affine_span(x: np.ndarray) -> None:
    n, d = x.shape
    centred = x - x.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    tol = max(n, d) * _EPS * (sv[0] if sv.size else 0.0)
    rank = int(np.count_nonzero(sv > tol))
    if rank < d:
        constant = np.flatnonzero(np.ptp(x, axis=0) == 0.0).tolist()
        hint = f"; coordinates {constant} are constant over all points" if constant else ""
        raise SplineError(
            f"the {n} points span an affine subspace of dimension {rank} < d = {d}: fewer "
            f"than d+1 affinely independent points, the linear tail is not determined{hint}",
            range(n),
        )


def polynomial_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale that map the support bounding box to [-1, 1]^d (conditioning)."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    scale = (hi - lo) / 2.0
    scale[scale == 0.0] = 1.0
    return (hi + lo) / 2.0, scale


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """Exact Euclidean distances between the support points, (N, N) with a zero diagonal."""
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def build_system(
    points: np.ndarray, values: np.ndarray, smoothing: float, shift: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented system A z = b of the smoothed cubic spline.

    ``A = [[Phi + lambda I, P], [P^T, 0]]`` with ``Phi_ij = |x_i - x_j|^3`` and
    ``P = [1, (x - shift) / scale]``; ``b = [y; 0]``. Distances are computed
    exactly here (no expansion trick): N is small and the diagonal must be 0.
    """
    n, d = points.shape
    a = np.zeros((n + d + 1, n + d + 1))
    a[:n, :n] = pairwise_distances(points) ** 3 + smoothing * np.eye(n)
    a[:n, n] = 1.0
    a[:n, n + 1 :] = (points - shift) / scale
    a[n:, :n] = a[:n, n:].T
    b = np.zeros(n + d + 1)
    b[:n] = values
    return a, b


class Factorization:
    """Pivoted Householder QR ``A[:, perm] = Q R`` of the augmented matrix (LAPACK geqp3)."""

    def __init__(self, a: np.ndarray) -> None:
        self.q, self.r, self.perm = scipy.linalg.qr(a, pivoting=True)
        diag = np.abs(np.diag(self.r))
        tol = RANK_RTOL_FACTOR * a.shape[0] * _EPS * diag[0]
        self.rank = int(np.count_nonzero(diag > tol))

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``A z = rhs`` (rhs may be a vector or a matrix of columns)."""
        w = scipy.linalg.solve_triangular(self.r, self.q.T @ rhs)
        z = np.empty_like(w)
        z[self.perm] = w
        return z

    def inverse_diagonal(self) -> np.ndarray:
        """Diagonal of A^{-1}, the denominators of Rippa's leave-one-out formula."""
        return np.diag(self.solve(np.eye(self.r.shape[0])))


def solve_system(
    a: np.ndarray, b: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, Factorization]:
    """Solve the augmented system and verify it.

    Raises
    ------
    SplineError
        When the factorization is rank deficient or the residual
        ``max|A z - b|`` exceeds ``RESIDUAL_RTOL * max|b|``; the message and
        ``indices`` name the closest pair of support points.
    """
    fact = Factorization(a)
    n_total = a.shape[0]
    if fact.rank < n_total:
        _raise_unstable(points, f"the system is rank deficient ({fact.rank}/{n_total})")
    z = fact.solve(b)
    residual = float(np.max(np.abs(a @ z - b)))
    limit = RESIDUAL_RTOL * float(np.max(np.abs(b)))
    if not residual <= limit:
        _raise_unstable(
            points, f"the solution misses the data by {residual:.3g} (tolerance {limit:.3g})"
        )
    return z, fact


def _raise_unstable(points: np.ndarray, reason: str) -> None:
    n = points.shape[0]
    dist = pairwise_distances(points)
    dist[np.diag_indices(n)] = np.inf
    i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
    i, j = sorted((int(i), int(j)))
    raise SplineError(
        f"unstable spline system: {reason}; closest support points are {i} and {j} "
        f"at distance {dist[i, j]:.3g}",
        (i, j),
    )


def evaluate(
    x: np.ndarray,
    centres: np.ndarray,
    weights: np.ndarray,
    linear: np.ndarray,
    constant: float,
    memory_budget: int = MEMORY_BUDGET,
) -> np.ndarray:
    """Evaluate ``sum_j w_j |x - c_j|^3 + linear . x + constant`` in chunks.

    ``x`` and ``centres`` must share the same origin (the caller centres both
    on the support bounding box, which keeps the expansion trick accurate).
    Squared distances come from one matmul of ``[x, |x|^2, 1]`` with
    ``[-2 c^T; 1; |c|^2]``. Chunks are sized to stay in cache
    (``CACHE_BYTES``) and never exceed ``memory_budget`` bytes of temporaries.
    """
    m, d = x.shape
    n = centres.shape[0]
    row_bytes = 8 * (2 * n + d + 2)
    rows = max(1, min(memory_budget, CACHE_BYTES) // row_bytes)
    basis = np.empty((d + 2, n))
    basis[:d] = -2.0 * centres.T
    basis[d] = 1.0
    basis[d + 1] = np.einsum("ij,ij->i", centres, centres)
    out = np.empty(m)
    k_max = min(rows, m)
    augmented = np.empty((k_max, d + 2))
    augmented[:, d + 1] = 1.0
    r2 = np.empty((k_max, n))
    root = np.empty_like(r2)
    for start in range(0, m, rows):
        chunk = x[start : start + rows]
        k = chunk.shape[0]
        aug, buf, rbuf = augmented[:k], r2[:k], root[:k]
        aug[:, :d] = chunk
        np.einsum("ij,ij->i", chunk, chunk, out=aug[:, d])
        np.matmul(aug, basis, out=buf)
        np.maximum(buf, 0.0, out=buf)
        np.sqrt(buf, out=rbuf)
        buf *= rbuf
        np.matmul(buf, weights, out=out[start : start + k])
    out += x @ linear
    out += constant
    return out


class PolyharmonicSpline:
    r"""Cubic polyharmonic spline with a linear polynomial tail.

    .. math::

        s(x) = \sum_{j=1}^{N} c_j \, \lVert x - x_j \rVert^3 + a_0 + a^T x

    The coefficients solve the augmented system

    .. math::

        \begin{bmatrix} \Phi + \lambda I & P \\ P^T & 0 \end{bmatrix}
        \begin{bmatrix} c \\ a \end{bmatrix} =
        \begin{bmatrix} y \\ 0 \end{bmatrix},
        \qquad \Phi_{ij} = \lVert x_i - x_j \rVert^3,\; P_i = [1, x_i^T],

    so that ``s(x_i) + lambda c_i = y_i``. The kernel r^3 is conditionally
    positive definite of order 2, hence the system is uniquely solvable
    whenever the points are distinct (or ``lambda > 0``) and contain d+1
    affinely independent points (P has full column rank) [1]_. The solve
    uses a pivoting Householder QR and verifies its residual.

    Parameters
    ----------
    points : (N, d) array_like
        Support points (unit-box coordinates in this project).
    values : (N,) array_like
        Data at the support points.
    smoothing : float, optional
        lambda >= 0 added to the diagonal of Phi, scipy's convention; 0 interpolates.

    Raises
    ------
    SplineError
        Invalid input or an unstable / singular system; ``indices`` names the
        offending points.

    References
    ----------
    .. [1] Wendland, H., 2005. Scattered Data Approximation, Thm. 8.21.
       Cambridge University Press.
    """

    def __init__(self, points: np.ndarray, values: np.ndarray, smoothing: float = 0.0) -> None:
        self.points, self.values, self.smoothing = validate(points, values, smoothing)
        self._shift, self._scale = polynomial_frame(self.points)
        a, b = build_system(self.points, self.values, self.smoothing, self._shift, self._scale)
        z, self._factorization = solve_system(a, b, self.points)
        n = self.points.shape[0]
        self.coefficients: np.ndarray = z[:n]
        tail = z[n + 1 :] / self._scale
        #: Linear tail in the original coordinates: p(x) = poly[0] + poly[1:] . x
        self.poly: np.ndarray = np.concatenate(([z[n] - tail @ self._shift], tail))
        self._centred = self.points - self._shift
        self._tail_constant = float(z[n])
        self._tail_linear = tail

    @property
    def d(self) -> int:
        """Number of dimensions."""
        return int(self.points.shape[1])

    def __call__(self, x: np.ndarray, memory_budget: int = MEMORY_BUDGET) -> np.ndarray:
        """Evaluate s at ``x`` of shape (M, d), or (d,) for a single point (returns a scalar array)."""
        arr = np.asarray(x, dtype=np.float64)
        single = arr.ndim == 1
        if single:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ValueError(
                f"expected points of shape (M, {self.d}) or ({self.d},), got {arr.shape}"
            )
        out = evaluate(
            arr - self._shift,
            self._centred,
            self.coefficients,
            self._tail_linear,
            self._tail_constant,
            memory_budget,
        )
        return out[0] if single else out

    def loo_errors(self) -> np.ndarray:
        """Leave-one-out errors ``y_i - s^{(-i)}(x_i)`` by Rippa's formula ``c_i / (A^{-1})_ii``.

        The formula holds for the smoothed system as well. Entries are NaN
        where removing the point leaves an ill-posed system (e.g. N = d+1).
        """
        n = self.points.shape[0]
        denom = self._factorization.inverse_diagonal()[:n]
        scale = np.max(np.abs(self._factorization.r[0, 0]))
        ok = np.abs(denom) * scale > n * _EPS * 1e3
        out = np.full(n, np.nan)
        out[ok] = self.coefficients[ok] / denom[ok]
        return out

    @property
    def loo_rmse(self) -> float:
        """Root mean square of :meth:`loo_errors` (NaN when any is undefined)."""
        return float(np.sqrt(np.mean(self.loo_errors() ** 2)))
