"""Cubic polyharmonic spline with a linear polynomial tail.

The surrogate of the search: it interpolates the measured (architecture ->
metric) points in the unit box. Build, solve and evaluate are separate
functions over arrays; :class:`PolyharmonicSpline` only ties them together.
The function is the one of ``scipy.interpolate.RBFInterpolator(kernel="cubic",
degree=1, smoothing=...)``; the differences are an LU solve with a
condition estimate in scaled coordinates (so the singularity test does not
depend on the units of the data), the least extra smoothing that makes an ill-conditioned system stable
instead of a refusal, an analytic gradient and a faster chunked evaluation.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg

from nas.errors import UserError

#: Most support points one spline is fitted on. The solve is dense: time grows as N^3
#: and memory as N^2; at this size a controller's whole per-batch fit stays under
#: 10 s and 2 GB on two cores (README, Performance). Beyond it :func:`validate`
#: refuses before allocating anything of size N^2.
MAX_SUPPORT = 2500

#: Upper bound on the bytes of temporaries one evaluation may allocate.
MEMORY_BUDGET = 64 * 2**20

#: Preferred bytes per evaluation chunk: small enough for the buffers to stay in
#: cache, which is about twice as fast as memory-sized chunks.
CACHE_BYTES = 2**19

#: Estimated reciprocal 1-norm condition number below which the system counts as
#: singular, in units of (system size x machine epsilon), as numpy.linalg.matrix_rank does.
RANK_RTOL_FACTOR = 1.0

#: Largest accepted residual max|A z - b| relative to max|b|. Above it the solution
#: does not reproduce the data to the accuracy the caller relies on.
RESIDUAL_RTOL = 1e-8

#: Smoothing ladder tried when the exact system is ill-conditioned, relative to the
#: largest kernel entry of the scaled system: the first stable rung is used.
SMOOTHING_LADDER = tuple(10.0**k for k in range(-14, -1))

_EPS = float(np.finfo(np.float64).eps)


class SplineError(UserError, ValueError):
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
        points that are not affinely spanning, more than ``MAX_SUPPORT`` points.
    """
    x = np.array(points, dtype=np.float64, copy=True)
    y = np.array(values, dtype=np.float64, copy=True)
    if x.ndim != 2 or x.shape[1] == 0:
        raise SplineError(f"points must be a 2-D array (N, d) with d >= 1, got shape {x.shape}")
    n, d = x.shape
    if y.shape != (n,):
        raise SplineError(f"values must have shape ({n},) to match points, got {y.shape}")
    if n > MAX_SUPPORT:
        raise SplineError(
            f"{n:,} support points exceed the {MAX_SUPPORT:,} one spline is fitted on (a dense "
            "solve: time grows as N^3, memory as N^2); fit a subset, e.g. init a search on a "
            "narrower box and import the measurements inside it"
        )
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
    span = np.ptp(x, axis=0)
    centred = (x - x.mean(axis=0)) / np.where(span > 0.0, span, 1.0)  # units do not matter
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
    """Centre and half-widths of the support bounding box (1 where a width is 0)."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    scale = (hi - lo) / 2.0
    scale[scale == 0.0] = 1.0
    return (hi + lo) / 2.0, scale


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """Exact Euclidean distances between the support points, (N, N) with a zero diagonal.

    Summed one coordinate at a time: two (N, N) buffers instead of an (N, N, d) one.
    """
    n = points.shape[0]
    total, term = np.zeros((n, n)), np.empty((n, n))
    for column in points.T:
        np.subtract(column[:, None], column[None, :], out=term)
        term *= term
        total += term
    return np.sqrt(total, out=total)


def build_system(
    points: np.ndarray, values: np.ndarray, smoothing: float, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented system A z = b of the smoothed cubic spline in centred coordinates.

    ``A = [[Phi + lambda I, P], [P^T, 0]]`` with ``Phi_ij = |v_i - v_j|^3`` and
    ``P = [1, v / scale]``; ``b = [y; 0]``. ``points`` (v) are centred on their
    bounding box and divided by its largest half-width, so the kernel block
    and the tail block have comparable sizes whatever the units. Distances are
    computed exactly here (no expansion trick): N is small and the diagonal
    must be 0.
    """
    n, d = points.shape
    a = np.zeros((n + d + 1, n + d + 1))
    a[:n, :n] = pairwise_distances(points) ** 3 + smoothing * np.eye(n)
    a[:n, n] = 1.0
    a[:n, n + 1 :] = points / scale
    a[n:, :n] = a[:n, n:].T
    b = np.zeros(n + d + 1)
    b[:n] = values
    return a, b


class Factorization:
    """LU factorization with partial pivoting of the augmented matrix (LAPACK getrf).

    One O(N^3) factorization serves the solve, the condition estimate
    (getcon, O(N^2)) and the diagonal of the inverse for leave-one-out
    errors; a pivoted QR (geqp3) is level-2 BLAS and an order of magnitude
    slower at N = 2,000.
    """

    def __init__(self, a: np.ndarray) -> None:
        self.lu, self.piv, info = scipy.linalg.lapack.dgetrf(a)
        one_norm = float(np.max(np.sum(np.abs(a), axis=0)))
        #: Largest column 2-norm of A: the size the leave-one-out test compares with.
        self.column_norm = float(np.sqrt(np.max(np.einsum("ij,ij->j", a, a))))
        if info > 0 or one_norm == 0.0:
            self.rcond = 0.0
        else:
            self.rcond = float(scipy.linalg.lapack.dgecon(self.lu, one_norm, norm="1")[0])

    @property
    def singular(self) -> bool:
        """Whether the reciprocal condition estimate is below ``RANK_RTOL_FACTOR * N * eps``."""
        return not self.rcond > RANK_RTOL_FACTOR * self.lu.shape[0] * _EPS

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Solve ``A z = rhs`` (rhs may be a vector or a matrix of columns)."""
        z, _ = scipy.linalg.lapack.dgetrs(self.lu, self.piv, rhs)
        return z

    def inverse_diagonal(self) -> np.ndarray:
        """Diagonal of A^{-1}, the denominators of Rippa's leave-one-out formula.

        From the one factorization: ``A^{-1} = solve(I)`` (getrs, level-3 BLAS;
        getri with its default workspace is several times slower).
        """
        return np.diag(self.solve(np.eye(self.lu.shape[0]))).copy()


def solve_system(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Factorization] | str:
    """Solve the augmented system and verify it; a string says why it is unstable.

    Unstable means a numerically singular matrix (its estimated reciprocal
    1-norm condition number below ``RANK_RTOL_FACTOR * N * eps``) or a
    residual ``max|A z - b|`` above ``RESIDUAL_RTOL * max|b|``.
    """
    fact = Factorization(a)
    if fact.singular:
        return f"the system is numerically singular (reciprocal condition {fact.rcond:.1e})"
    z = fact.solve(b)
    residual = float(np.max(np.abs(a @ z - b)))
    limit = RESIDUAL_RTOL * float(np.max(np.abs(b)))
    if not residual <= limit:
        return f"the solution misses the data by {residual:.3g} (tolerance {limit:.3g})"
    return z, fact


def solve_stable(
    points: np.ndarray, values: np.ndarray, smoothing: float, scale: np.ndarray
) -> tuple[np.ndarray, Factorization, float, str]:
    """Solve with ``smoothing``, else with the least rung of the ladder that is stable.

    ``points`` are in the scaled frame of :func:`build_system`. Returns the
    solution, its factorization, the smoothing used and, when it exceeds the
    one asked for, a note for people that names the closest pair of points.

    Raises
    ------
    SplineError
        When no rung is stable (not seen on data that passed :func:`validate`).
    """
    a, b = build_system(points, values, smoothing, scale)
    solved = solve_system(a, b)
    if not isinstance(solved, str):
        return (*solved, smoothing, "")
    why = solved
    unit = max(float(np.max(np.abs(a[: len(points), : len(points)]))), _EPS)
    for rung in SMOOTHING_LADDER:
        lam = smoothing + rung * unit
        a, b = build_system(points, values, lam, scale)
        solved = solve_system(a, b)
        if not isinstance(solved, str):
            i, j, dist = closest_pair(points)
            note = (
                f"exact interpolation is ill-conditioned ({why}; closest support points "
                f"{i} and {j}); smoothed with {rung:.0e} of the kernel scale"
            )
            return (*solved, lam, note)
    i, j, dist = closest_pair(points)
    raise SplineError(
        f"unstable spline system: {why}, even with smoothing; closest support points are "
        f"{i} and {j} at distance {dist:.3g} (scaled)",
        (i, j),
    )


def closest_pair(points: np.ndarray) -> tuple[int, int, float]:
    """Indices (i < j) and distance of the two support points closest to each other."""
    n = points.shape[0]
    dist = pairwise_distances(points)
    dist[np.diag_indices(n)] = np.inf
    i, j = np.unravel_index(int(np.argmin(dist)), dist.shape)
    i, j = sorted((int(i), int(j)))
    return i, j, float(dist[i, j])


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
    uses a pivoted LU factorization with a condition estimate on coordinates
    scaled to the support's bounding box and verifies its residual; where the exact system is
    numerically unstable, the least smoothing of ``SMOOTHING_LADDER`` that
    is stable is used instead (``smoothing_used``, ``conditioning``).

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
        Invalid input or singular data (duplicates without smoothing, fewer
        than d+1 affinely independent points); ``indices`` names the
        offending points.

    References
    ----------
    .. [1] Wendland, H., 2005. Scattered Data Approximation, Thm. 8.21.
       Cambridge University Press.
    """

    def __init__(self, points: np.ndarray, values: np.ndarray, smoothing: float = 0.0) -> None:
        self.points, self.values, self.smoothing = validate(points, values, smoothing)
        self._shift, half = polynomial_frame(self.points)
        #: Coordinates are divided by this (the largest half-width) before solving.
        self._radius = float(half.max())
        self._poly_scale = half / self._radius
        self._centred = (self.points - self._shift) / self._radius
        cube = self._radius**3  # Phi scales with the cube of the coordinates, and so must lambda
        z, self._factorization, used, self.conditioning = solve_stable(
            self._centred, self.values, self.smoothing / cube, self._poly_scale
        )
        #: The smoothing actually used, in the caller's units (> ``smoothing`` when the
        #: exact system was ill-conditioned; ``conditioning`` then says why).
        self.smoothing_used: float = used * cube
        n = self.points.shape[0]
        self._weights = z[:n]
        self._tail_constant = float(z[n])
        self._tail_linear = z[n + 1 :] / self._poly_scale
        #: Kernel coefficients c_j in the caller's coordinates.
        self.coefficients: np.ndarray = self._weights / cube
        tail = z[n + 1 :] / half
        #: Linear tail in the original coordinates: p(x) = poly[0] + poly[1:] . x
        self.poly: np.ndarray = np.concatenate(([z[n] - tail @ self._shift], tail))

    @property
    def d(self) -> int:
        """Number of dimensions."""
        return int(self.points.shape[1])

    def _frame(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        arr = np.asarray(x, dtype=np.float64)
        single = arr.ndim == 1
        if single:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ValueError(
                f"expected points of shape (M, {self.d}) or ({self.d},), got {arr.shape}"
            )
        return (arr - self._shift) / self._radius, single

    def __call__(self, x: np.ndarray, memory_budget: int = MEMORY_BUDGET) -> np.ndarray:
        """Evaluate s at ``x`` of shape (M, d), or (d,) for a single point (returns a scalar array)."""
        v, single = self._frame(x)
        out = evaluate(
            v,
            self._centred,
            self._weights,
            self._tail_linear,
            self._tail_constant,
            memory_budget,
        )
        return out[0] if single else out

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Gradient of s at ``x`` (M, d) or (d,): ``sum_j 3 c_j |x - x_j| (x - x_j)`` plus the tail.

        Exact and cheap (one pass over the N centres per point), which is what
        lets a local optimiser polish the argmax.
        """
        v, single = self._frame(x)
        diff = v[:, None, :] - self._centred[None, :, :]
        r = np.sqrt(np.einsum("mnk,mnk->mn", diff, diff))
        grad = 3.0 * np.einsum("mn,mnk->mk", r * self._weights, diff) + self._tail_linear
        grad /= self._radius
        return grad[0] if single else grad

    def loo_errors(self) -> np.ndarray:
        """Leave-one-out errors ``y_i - s^{(-i)}(x_i)`` by Rippa's formula ``c_i / (A^{-1})_ii``.

        The formula holds for the smoothed system as well. Entries are NaN
        where removing the point leaves an ill-posed system (e.g. N = d+1).
        The inverse costs O(N^3), so it is formed once per spline: the fit
        summary and the stop rule both ask for these errors.
        """
        return self._loo_errors.copy()

    @functools.cached_property
    def _loo_errors(self) -> np.ndarray:
        n = self.points.shape[0]
        denom = self._factorization.inverse_diagonal()[:n]
        scale = self._factorization.column_norm
        ok = np.abs(denom) * scale > n * _EPS * 1e3
        out = np.full(n, np.nan)
        out[ok] = self._weights[ok] / denom[ok]
        return out

    @property
    def loo_rmse(self) -> float:
        """Root mean square of :meth:`loo_errors` (NaN when any is undefined)."""
        return float(np.sqrt(np.mean(self.loo_errors() ** 2)))
