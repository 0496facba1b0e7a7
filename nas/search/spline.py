"""Cubic polyharmonic spline with a linear polynomial tail.

The surrogate of the search: it interpolates the measured (architecture ->
metric) points in the unit box. Build, solve and evaluate are separate
functions over arrays; :class:`PolyharmonicSpline` only ties them together.
The function is the one of ``scipy.interpolate.RBFInterpolator(kernel="cubic",
degree=1, smoothing=...)``; the differences are a Cholesky solve of the
system projected on the null space of the linear tail, with a condition
estimate in scaled coordinates (so the singularity test does not depend on
the units of the data), the least extra smoothing that makes an ill-conditioned system stable
instead of a refusal, an analytic gradient and a faster chunked evaluation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

from nas.errors import UserError
from nas.search.threads import in_search_threads

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

#: Largest residual max|A z - b| of a solve that is kept, relative to the range of the
#: data (max|b| where the data are constant): the accuracy readers of the fit rely on.
RESIDUAL_RTOL = 1e-6

#: Smoothing ladder tried when the exact system is ill-conditioned, relative to the
#: largest kernel entry of the scaled system: the first stable rung is used.
SMOOTHING_LADDER = tuple(10.0**k for k in range(-14, -1))

_EPS = float(np.finfo(np.float64).eps)

#: Where a :class:`Conditioning` note names its pair of support points.
_PAIR = "{pair}"


@dataclass(frozen=True)
class Conditioning:
    """Why a fit is not the accurate solve asked for, naming the closest pair of support points.

    ``pair`` are their row indices (i < j). A spline knows its support only by
    row, so :attr:`text` names the rows; a caller that knows what its rows are
    renders the note with their names instead (:meth:`naming`): the optimizer's
    rows are its measured points in an order of its own, and "closest support
    points 1 and 4" read as point ids named a pending, unmeasured point.
    """

    template: str
    pair: tuple[int, int]

    def naming(self, first: str, second: str) -> str:
        """The note with the pair named ``first`` and ``second``."""
        return self.template.replace(_PAIR, f"{first} and {second}")

    @property
    def text(self) -> str:
        """The note with the pair named by row index."""
        return self.naming(*(str(i) for i in self.pair))


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
        points, negative smoothing, more than ``MAX_SUPPORT`` points. Singular
        data (duplicates, no affine span) is diagnosed by
        :func:`diagnose_singular` when a solve fails, so a fit of good data
        does not pay for the search.
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
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise SplineError(f"points {bad.tolist()} have NaN or infinite coordinates", bad)
    if not np.isfinite(y).all():
        bad = np.flatnonzero(~np.isfinite(y))
        raise SplineError(f"values at points {bad.tolist()} are NaN or infinite", bad)
    if not (np.isfinite(smoothing) and smoothing >= 0.0):
        raise SplineError(f"smoothing must be a finite number >= 0, got {smoothing!r}")
    if n < d + 1:
        raise SplineError(
            f"at least d+1 = {d + 1} points are required for a linear tail in d = {d} "
            f"dimensions, got {n}"
        )
    return x, y, float(smoothing)


def diagnose_singular(points: np.ndarray, smoothing: float) -> None:
    """Raise the error that names singular data: duplicates (without smoothing), no affine span.

    Returns when the data is not singular (an ill-conditioned system is
    handled by the smoothing ladder instead).
    """
    if smoothing == 0.0:
        _check_duplicates(points)
    _check_affine_span(points)


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


def _block_rows(width: int) -> int:
    """Rows of ``width`` float64 columns that keep one block's temporaries in cache."""
    return max(1, CACHE_BYTES // (8 * max(width, 1)))


def _kernel_with_products(
    points: np.ndarray, basis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Phi`` of :func:`kernel_matrix`, ``Phi @ basis`` and the row sums of ``Phi``.

    The products are formed block by block while the block is in cache, so
    they cost no further pass over the N x N array.
    """
    n, d = points.shape
    norms = np.einsum("ij,ij->i", points, points)
    left = np.empty((n, d + 2))
    left[:, :d], left[:, d], left[:, d + 1] = points, norms, 1.0
    right = np.empty((d + 2, n))
    right[:d], right[d], right[d + 1] = -2.0 * points.T, 1.0, norms
    phi = left @ right  # squared distances, one matrix product
    product = np.empty((n, basis.shape[1]))
    row_sums = np.empty(n)
    rows = _block_rows(n)
    for start in range(0, n, rows):
        block = phi[start : start + rows]
        block.reshape(-1)[start :: n + 1] = 0.0  # the diagonal, exactly
        np.maximum(block, 0.0, out=block)
        block *= np.sqrt(block)
        np.matmul(block, basis, out=product[start : start + rows])
        np.sum(block, axis=1, out=row_sums[start : start + rows])
    return phi, product, row_sums


def kernel_matrix(points: np.ndarray) -> np.ndarray:
    """``Phi_ij = |v_i - v_j|^3`` of centred points, (N, N), zero diagonal.

    Squared distances come from one matrix product, ``|v_i|^2 + |v_j|^2 -
    2 v_i . v_j``; root and cube follow a cache-sized block of rows at a
    time (``r2 * sqrt(r2)``: no power, no full-size temporary). On points
    centred on their bounding box and scaled to [-1, 1] the rounding of the
    expansion is about ``d * eps`` absolute, a backward error of the order
    of the factorization's own; the diagonal is exactly 0.
    """
    return _kernel_with_products(points, np.empty((points.shape[0], 0)))[0]


class Factorization:
    r"""Cholesky factorization of the spline system projected on the null space of ``P^T``.

    With ``P = Q_1 R`` (Householder QR of the tail block, LAPACK geqrf) and
    ``Pi = I - Q_1 Q_1^T``, the kernel weights of the augmented system
    ``[[Phi + lambda I, P], [P^T, 0]] [c; a] = [y; 0]`` are ``c = M^{-1} Pi y``
    with

    .. math::  M = \Pi (\Phi + \lambda I) \Pi + \mu Q_1 Q_1^T,

    which is positive definite: r^3 is conditionally positive definite of
    order 2, so ``Pi Phi Pi`` is positive on the null space of ``P^T``, and
    ``mu`` (the mean eigenvalue there) fills the range of ``P``. ``M`` is
    ``Phi`` after one symmetric rank-2(d+1) update (syr2k) and is factored
    in place (potrf): half the flops of the LU of the augmented system and
    no second N x N array. Update and factor live in the lower triangle;
    the strict upper triangle keeps ``Phi``, so the residual of the
    original system is verified with the exact kernel block. The top-left
    block of the inverse of the augmented matrix is ``M^{-1} - Q_1 Q_1^T / mu``;
    its diagonal, the denominators of Rippa's leave-one-out formula, comes
    from the inverse of the Cholesky factor (trtri) in the same buffer.

    Parameters
    ----------
    points : (N, d) array
        Support points centred on their bounding box and scaled to [-1, 1].
    smoothing : float
        lambda, in the units of ``Phi`` of ``points``.
    scale : (d,) array
        The tail block is ``P = [1, points / scale]``.
    """

    def __init__(self, points: np.ndarray, smoothing: float, scale: np.ndarray) -> None:
        n, d = points.shape
        self.n, self.smoothing = n, smoothing
        self.tail = np.empty((n, d + 1))
        self.tail[:, 0], self.tail[:, 1:] = 1.0, points / scale
        qr, tau, _, _ = lapack.dgeqrf(self.tail)
        self.r = qr[: d + 1]  # R in the upper triangle; trcon and trtrs read nothing else
        #: Reciprocal condition estimate of the tail block (0: the points span no d-box).
        self.tail_rcond = float(lapack.dtrcon(self.r)[0])
        self.q = lapack.dorgqr(qr, tau)[0]
        phi, w, row_sums = _kernel_with_products(points, self.q)
        s = self.q.T @ w
        free = n - d - 1  # trace(Pi Phi Pi) = -trace(S): the diagonal of Phi is 0
        mu = smoothing - float(np.trace(s)) / free if free > 0 else 1.0
        self.mu = mu if mu > 0.0 else 1.0  # no positive part: the checks below say so
        s.flat[:: d + 2] += self.mu - smoothing
        half = w - self.q @ (s / 2.0)
        self._phi = phi  # C-ordered; its transpose is the Fortran-ordered buffer LAPACK works on
        self._diagonal = phi.reshape(-1)[:: n + 1]
        self._diagonal += smoothing
        self.factor = blas.dsyr2k(-1.0, self.q, half, beta=1.0, c=phi.T, lower=1, overwrite_c=1)
        self.norm = self._one_norm(row_sums)
        _, info = lapack.dpotrf(self.factor, lower=1, clean=0, overwrite_a=1)
        #: Whether the Cholesky factorization ran through (M numerically positive definite).
        self.factored = info == 0
        self.rcond = 0.0
        if self.factored and self.norm > 0.0:
            self.rcond = float(lapack.dpocon(self.factor, self.norm, uplo="L")[0])

    def _one_norm(self, phi_row_sums: np.ndarray) -> float:
        """1-norm of ``M`` while its lower triangle and ``Phi``'s strict upper share the buffer.

        Column j of the buffer sums ``|M|`` over ``i >= j`` and ``Phi`` over
        ``i < j``; row j sums ``|M|`` over ``i <= j`` and ``Phi`` over ``i > j``:
        together the 1-norm column of ``M``, its diagonal once more and the
        row sum of ``Phi``. One pass in row blocks of the C-ordered array.
        """
        columns = np.empty(self.n)
        rows_total = np.zeros(self.n)
        rows = _block_rows(self.n)
        for start in range(0, self.n, rows):
            block = np.abs(self._phi[start : start + rows])
            np.sum(block, axis=1, out=columns[start : start + rows])
            rows_total += block.sum(axis=0)
        total = columns + rows_total - phi_row_sums - np.abs(self._diagonal)
        return float(total.max()) if self.n else 0.0

    @property
    def singular(self) -> bool:
        """Whether the reciprocal condition estimate of ``M`` is below ``RANK_RTOL_FACTOR * N * eps``."""
        return not self.rcond > RANK_RTOL_FACTOR * self.n * _EPS

    def _kernel_product(self, c: np.ndarray) -> np.ndarray:
        """``(Phi + lambda I) c`` from the untouched strict upper triangle (the exact ``Phi``)."""
        factor_diagonal = self._diagonal.copy()
        self._diagonal[:] = self.smoothing
        try:
            return blas.dsymv(1.0, self.factor, c, lower=0)
        finally:
            self._diagonal[:] = factor_diagonal

    def solve(self, values: np.ndarray, target: float | None = None) -> tuple[np.ndarray, float]:
        """``z = [c; a]`` with right-hand side ``[values; 0]`` and its residual ``max|A z - b|``.

        The residual is measured in the system whose smoothing is ``target``
        (default: this one's): a smoothed solve is judged by how far it
        misses the data of the system asked for.
        """
        projected = values - self.q @ (self.q.T @ values)
        c = lapack.dpotrs(self.factor, projected, lower=1)[0]
        c -= self.q @ (self.q.T @ c)  # c lies in the null space of P^T; drop the rounding
        kernel = self._kernel_product(c)
        a, info = lapack.dtrtrs(self.r, self.q.T @ (values - kernel))
        if info != 0:
            a = np.full(len(self.r), np.nan)
        if target is not None:
            kernel -= (self.smoothing - target) * c
        residual = max(
            float(np.max(np.abs(kernel + self.tail @ a - values))),
            float(np.max(np.abs(self.tail.T @ c))),
        )
        return np.concatenate([c, a]), residual

    def inverse_diagonal(self) -> np.ndarray:
        """Diagonal of the top-left N x N block of the inverse of the augmented matrix.

        The denominators of Rippa's leave-one-out formula. Inverts the
        Cholesky factor in place (N^3 / 3 flops), so the factorization
        cannot solve afterwards: the buffer is released.
        """
        _, info = lapack.dtrtri(self.factor, lower=1, overwrite_c=1)
        if info != 0:
            return np.zeros(self.n)
        # Column j of the inverse factor, rows i >= j, is row j of the C-ordered array from j.
        out = np.empty(self.n)
        rows = _block_rows(self.n)
        for start in range(0, self.n, rows):
            block = self._phi[start : start + rows, start:]
            np.einsum("ij,ij->i", block, block, out=out[start : start + rows])
            left = np.tril(block[:, : len(block)], -1)
            out[start : start + rows] -= np.einsum("ij,ij->i", left, left)
        self.factor = self._phi = self._diagonal = None
        return out - np.einsum("ij,ij->i", self.q, self.q) / self.mu


def residual_limit(values: np.ndarray) -> float:
    """The largest residual a kept solve may leave: ``RESIDUAL_RTOL`` of the data's range."""
    spread = float(np.ptp(values)) if values.size else 0.0
    return RESIDUAL_RTOL * (spread if spread > 0.0 else float(np.max(np.abs(values), initial=0.0)))


def solve_system(
    points: np.ndarray,
    values: np.ndarray,
    smoothing: float,
    scale: np.ndarray,
    target: float | None = None,
) -> tuple[np.ndarray, Factorization, float] | str:
    """Solve the augmented system; the solution, its factorization and residual, or why not.

    No solution comes from a tail block of numerically lower rank or a
    projected kernel matrix whose Cholesky factorization fails. The residual
    ``max|A z - b|`` is measured in the system with smoothing ``target``
    (default ``smoothing``); whether it is small enough is the caller's
    decision (:func:`solve_stable`).
    """
    fact = Factorization(points, smoothing, scale)
    if not fact.tail_rcond > RANK_RTOL_FACTOR * fact.n * _EPS:
        return (
            f"the linear tail is numerically singular (reciprocal condition {fact.tail_rcond:.1e})"
        )
    if not fact.factored:
        return f"the system is numerically singular (reciprocal condition {fact.rcond:.1e})"
    z, residual = fact.solve(values, target)
    return z, fact, residual


def solve_stable(
    points: np.ndarray, values: np.ndarray, smoothing: float, scale: np.ndarray
) -> tuple[np.ndarray, Factorization, float, Conditioning | None]:
    """Solve with ``smoothing``; smooth more only where that misses the data by less.

    ``points`` are centred and scaled as for :class:`Factorization`. The solve
    with the smoothing asked for is kept when its residual is within
    :func:`residual_limit`, however small its condition estimate. Otherwise
    singular data is named first (:func:`diagnose_singular`), then the least
    rung of ``SMOOTHING_LADDER`` whose system solves within the limit is
    tried; it is used only when it misses the data of the system asked for
    by less than that solve does. Returns the solution, its factorization,
    the smoothing used and, where the fit is not the accurate solve asked
    for, a note for people that names the closest pair of points (None where it is).

    Raises
    ------
    SplineError
        Singular data, or neither the solve asked for nor any rung solves.
    """
    limit = residual_limit(values)
    solved = solve_system(points, values, smoothing, scale)
    if not isinstance(solved, str) and solved[2] <= limit:
        if solved[1].singular:  # an accurate solve of data that may still be singular
            diagnose_singular(points, smoothing)
        return (*solved[:2], smoothing, None)
    diagnose_singular(points, smoothing)
    why = solved if isinstance(solved, str) else f"the solution misses the data by {solved[2]:.3g}"
    why += f" (tolerance {limit:.3g})" if not isinstance(solved, str) else ""
    exact_residual = np.inf if isinstance(solved, str) else solved[2]
    unit = max(float(kernel_matrix(points).max()), _EPS)  # the largest kernel entry
    i, j, dist = closest_pair(points)
    for rung in SMOOTHING_LADDER:
        lam = smoothing + rung * unit
        smoothed = solve_system(points, values, lam, scale)
        if isinstance(smoothed, str) or not smoothed[2] <= limit:
            continue  # not stable at this rung either
        misfit = smoothed[1].solve(values, smoothing)[1]
        if misfit < exact_residual:
            note = (
                f"exact interpolation is ill-conditioned ({why}; closest support points "
                f"{_PAIR}); smoothed with {rung:.0e} of the kernel scale, which misses "
                f"the data by {misfit:.3g}"
            )
            return (*smoothed[:2], lam, Conditioning(note, (i, j)))
        break  # more smoothing misses the data by more still
    if isinstance(solved, str):
        raise SplineError(
            f"unstable spline system: {why}, even with smoothing; closest support points are "
            f"{i} and {j} at distance {dist:.3g} (scaled)",
            (i, j),
        )
    note = (
        f"exact interpolation is ill-conditioned ({why}; closest support points {_PAIR}); "
        "kept: smoothing would miss the data by more"
    )
    return (*solved[:2], smoothing, Conditioning(note, (i, j)))


def closest_pair(points: np.ndarray) -> tuple[int, int, float]:
    """Indices (i < j) and distance of the two support points closest to each other."""
    from scipy.spatial import cKDTree  # only when a fit needs smoothing: keeps imports light

    dist, index = cKDTree(points).query(points, k=2)
    i = int(np.argmin(dist[:, 1]))
    j = int(index[i, 1])
    return min(i, j), max(i, j), float(dist[i, 1])


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


def gradient(
    x: np.ndarray,
    centres: np.ndarray,
    weights: np.ndarray,
    linear: np.ndarray,
    memory_budget: int = MEMORY_BUDGET,
) -> np.ndarray:
    """Gradient of :func:`evaluate`'s function: ``3 sum_j w_j |x - c_j| (x - c_j) + linear``.

    The differences ``x - c_j`` are formed directly (no expansion: the
    gradient vanishes at a centre and must stay exact there), a chunk of rows
    at a time: the k x N x d differences and the product the second einsum
    forms are sized like :func:`evaluate`'s chunks (``CACHE_BYTES``, never over
    ``memory_budget``; at least one row), not M x N x d.
    """
    m, d = x.shape
    n = centres.shape[0]
    rows = max(1, min(memory_budget, CACHE_BYTES) // (8 * n * (2 * d + 2)))
    out = np.empty((m, d))
    for start in range(0, m, rows):
        chunk = x[start : start + rows]
        diff = chunk[:, None, :] - centres[None, :, :]
        r = np.sqrt(np.einsum("mnk,mnk->mn", diff, diff))
        r *= weights
        np.einsum("mn,mnk->mk", r, diff, out=out[start : start + len(chunk)])
    out *= 3.0
    out += linear
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
    factors the system projected on the null space of ``P^T`` by Cholesky
    (:class:`Factorization`), with a condition estimate on coordinates
    scaled to the support's bounding box, and verifies its residual; where the exact system is
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

    @in_search_threads
    def __init__(self, points: np.ndarray, values: np.ndarray, smoothing: float = 0.0) -> None:
        self.points, self.values, self.smoothing = validate(points, values, smoothing)
        self._shift, half = polynomial_frame(self.points)
        #: Coordinates are divided by this (the largest half-width) before solving.
        self._radius = float(half.max())
        self._poly_scale = half / self._radius
        self._centred = (self.points - self._shift) / self._radius
        cube = self._radius**3  # Phi scales with the cube of the coordinates, and so must lambda
        z, self._factorization, used, note = solve_stable(
            self._centred, self.values, self.smoothing / cube, self._poly_scale
        )
        #: Why the fit is not the accurate solve asked for, with the closest pair of
        #: support points by row (None where it is); :attr:`conditioning` says it in words.
        self.conditioning_note: Conditioning | None = note
        self.conditioning: str = "" if note is None else note.text
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

    @in_search_threads
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

    @in_search_threads
    def gradient(self, x: np.ndarray, memory_budget: int = MEMORY_BUDGET) -> np.ndarray:
        """Gradient of s at ``x`` (M, d) or (d,): ``sum_j 3 c_j |x - x_j| (x - x_j)`` plus the tail.

        Exact and cheap (one pass over the N centres per point), which is what
        lets a local optimiser polish the argmax; chunked like evaluation, so
        its temporaries stay within ``memory_budget`` bytes for any M.
        """
        v, single = self._frame(x)
        grad = gradient(v, self._centred, self._weights, self._tail_linear, memory_budget)
        grad /= self._radius
        return grad[0] if single else grad

    def refit(self, points: np.ndarray, values: np.ndarray) -> PolyharmonicSpline:
        """A spline with this one's smoothing through other points (a batch's fantasies)."""
        return PolyharmonicSpline(points, values, self.smoothing)

    def kernel_frame(self, x: np.ndarray) -> tuple[PolyharmonicSpline, np.ndarray]:
        """This spline and ``x`` as they are: views map ``x`` to the fitted spline's coordinates
        (:mod:`nas.search.posterior` reads the kernel there)."""
        return self, np.asarray(x, dtype=np.float64)

    def loo_errors(self) -> np.ndarray:
        """Leave-one-out errors ``y_i - s^{(-i)}(x_i)`` by Rippa's formula ``c_i / (A^{-1})_ii``.

        The formula holds for the smoothed system as well. Entries are NaN
        where removing the point leaves an ill-posed system (e.g. N = d+1).
        The inverse costs O(N^3), so it is formed once per spline: the fit
        summary and the stop rule both ask for these errors.
        """
        return self._loo_errors.copy()

    @functools.cached_property
    @in_search_threads
    def _loo_errors(self) -> np.ndarray:
        n = self.points.shape[0]
        denom = self._factorization.inverse_diagonal()
        ok = np.abs(denom) * self._factorization.norm > n * _EPS * 1e3
        out = np.full(n, np.nan)
        out[ok] = self._weights[ok] / denom[ok]
        return out

    @property
    def loo_rmse(self) -> float:
        """Root mean square of :meth:`loo_errors` (NaN when any is undefined)."""
        return float(np.sqrt(np.mean(self.loo_errors() ** 2)))
