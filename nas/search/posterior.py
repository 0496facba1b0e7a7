"""The spline read as a kriging predictor: a distribution over functions to draw batch slots from.

A cubic polyharmonic spline with a linear tail is also the best linear
unbiased predictor of a random function whose *generalized covariance* is
phi(r) = r^3 with an unknown linear drift: an intrinsic random function of
order 1 (Matheron, Adv. Appl. Prob. 5, 1973; the equivalence of splines and
kriging: Matheron, Math. Geol. 13, 1981; Wahba, *Spline Models for
Observational Data*, 1990, ch. 1). The same equations that give the spline
give the covariance of its error at candidate points x, x':

    C(x, x') = phi(|x - x'|) - b(x)^T M^-1 b(x'),

    b(x) = [phi(|x - z_1|), ..., phi(|x - z_n|), 1, x],
    M = [[Phi + lambda I, P], [P^T, 0]],

with z_j the support points, Phi their kernel matrix, P = [1, z] the tail's
columns and lambda the smoothing the spline used (universal kriging with a
flat prior on the drift). C vanishes at the support of an interpolating
spline and grows away from it. Its scale is the amplitude's restricted
maximum-likelihood estimate, sigma^2 = y^T c / (n - d - 1), c the kernel
coefficients (y^T c is the spline's squared semi-norm, and n - d - 1 the
degrees of freedom the tail leaves).

:class:`PosteriorSampler` draws functions from N(s, spread^2 sigma^2 C) on a
fixed candidate set: the batch fill ``"thompson"``
(:class:`nas.search.batch.ThompsonPool`) gives each slot the best candidate
of its own draw (Thompson sampling in parallel: Kandasamy et al., AISTATS
2018; Hernandez-Lobato et al., ICML 2017). ``spread`` < 1 narrows the
draws: one amplitude is fitted over the whole box, while fills are taken
around the best measured point, where the spline has the most data
(``benchmarks/results/batch_fill.md``, "Thompson sampling").

Pure numerics: no I/O. The spline passed in may be a
:class:`~nas.search.spline.PolyharmonicSpline` or a view of one (warped
inputs, one category of a shared spline); each maps its candidates to the
fitted spline's own coordinates through ``kernel_frame``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import linalg
from scipy.spatial.distance import cdist

#: Eigenvalues of C below this fraction of its largest are rounding, not variance.
_EIGEN_FLOOR = 1e-12
#: Standard deviations either side within which a candidate may still win a draw.
PLAUSIBLE_Z = 4.0
#: At most this many candidates are drawn, those with the highest mean + z sd: the
#: covariance's eigendecomposition is cubic in them and its matrix quadratic. A DYCORS
#: pool of 200 d candidates at d = 8 (every benchmark problem) is never cut; at d = 32
#: and 48, uncut, a batch of four cost up to 49 s and 1.6 GB, and 171 s and 3.7 GB of a
#: login node (``benchmarks/results/batch_fill.md``, "At most 1,600 candidates drawn").
MAX_DRAWN = 1600


class KernelSpline(Protocol):
    """A fitted cubic spline: support, values, smoothing and kernel coefficients."""

    points: np.ndarray
    values: np.ndarray
    coefficients: np.ndarray
    smoothing_used: float


class Framed(Protocol):
    """A spline or a view of one that maps points to the fitted spline's coordinates."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def kernel_frame(self, x: np.ndarray) -> tuple[KernelSpline, np.ndarray]: ...


def amplitude(spline: KernelSpline) -> float:
    """sigma^2 = y^T c / (n - d - 1): the kernel's scale that makes the data most likely.

    With exactly d+1 points the tail interpolates alone, c = 0 and nothing
    is known of the scale: one degree of freedom is assumed, so the result
    is 0 and draws equal the spline (which then has nothing to say either).
    """
    n, d = np.shape(spline.points)
    dof = max(n - d - 1, 1)
    return max(float(np.dot(spline.coefficients, spline.values)) / dof, 0.0)


def error_covariance(spline: Framed, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spline's values at ``x`` (M, d) and the error covariance C (M, M), unscaled."""
    fitted, frame = spline.kernel_frame(np.asarray(x, dtype=np.float64))
    return np.asarray(spline(x), dtype=np.float64), _covariance(fitted, frame)


def _covariance(fitted: KernelSpline, frame: np.ndarray) -> np.ndarray:
    cross, weights = _conditioning(fitted, frame)
    cov = _phi(frame, frame) - cross @ weights
    return 0.5 * (cov + cov.T)


def _conditioning(fitted: KernelSpline, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b(x) for each candidate (rows) and M^-1 b(x) (columns): C = phi - b^T M^-1 b."""
    z = np.asarray(fitted.points, dtype=np.float64)
    n, d = z.shape
    kernel = _phi(z, z) + float(fitted.smoothing_used) * np.eye(n)
    tail = np.hstack([np.ones((n, 1)), z])
    system = np.block([[kernel, tail], [tail.T, np.zeros((d + 1, d + 1))]])
    cross = np.hstack([_phi(frame, z), np.ones((len(frame), 1)), frame])
    return cross, linalg.solve(system, cross.T, assume_a="sym")


def _phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """phi(|a_i - b_j|) = |a_i - b_j|^3 from distances taken directly (cdist), not from the
    one-product expansion of :func:`nas.search.spline.kernel_matrix`: near the support C
    is a small difference of such terms, and direct distances keep its rounding small."""
    return cdist(a, b) ** 3


class PosteriorSampler:
    """Functions drawn from the spline's posterior on a fixed set of candidates.

    Parameters
    ----------
    spline
        A fitted spline or a view of one (``kernel_frame``).
    x : (M, d) array
        The candidates, in the view's unit coordinates.
    spread : float
        Multiplies the posterior's standard deviation (1: the fitted amplitude).
    z : float
        The screen's width in standard deviations (:func:`plausible`); inf
        draws at every candidate.
    limit : int
        At most this many candidates are drawn (:func:`plausible`).

    The covariance is factored once (eigendecomposition: C is only positive
    semi-definite, exactly singular at measured candidates), so every draw
    costs one product. The factor is C's principal square root
    V sqrt(L) V^T, not V sqrt(L): both give draws of covariance C, but
    eigenvectors are fixed only up to sign (and up to a rotation where
    eigenvalues repeat or nearly do), and which basis LAPACK returns depends
    on the BLAS kernel, so with V sqrt(L) one seed drew different functions
    on different CPUs (45 of 180 batch runs of the benchmark differed
    between OpenBLAS's Haswell and SkylakeX kernels). The principal root is
    unique and continuous in C, so a seed draws the same batch whichever
    basis comes back (on the three problems most affected, 1 of 60 runs
    still differed between those kernels, where 30 did). Only the
    candidates that can win a draw are drawn (:func:`plausible`), at most
    ``limit`` of them; the others keep the spline's value. A DYCORS pool holds 200 d candidates, and the
    factorisation is cubic in their number:
    on the benchmark's ``nas8`` runs about half of them can win (the median
    batch), and a batch of four costs 2-5x less CPU at d = 8 and 7-40x less
    at d = 20 (``benchmarks/spline_speed.py --batch``).
    """

    def __init__(
        self,
        spline: Framed,
        x: np.ndarray,
        spread: float,
        z: float = PLAUSIBLE_Z,
        limit: int = MAX_DRAWN,
    ) -> None:
        if spread < 0:
            raise ValueError(f"spread must be >= 0, got {spread}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        fitted, frame = spline.kernel_frame(np.asarray(x, dtype=np.float64))
        self.mean = np.asarray(spline(x), dtype=np.float64)
        cross, weights = _conditioning(fitted, frame)
        scale = spread * np.sqrt(amplitude(fitted))
        sd = scale * np.sqrt(np.maximum(-np.einsum("ij,ji->i", cross, weights), 0.0))
        self.drawn = kept = np.flatnonzero(plausible(self.mean, sd, z, limit))
        cov = _phi(frame[kept], frame[kept]) - cross[kept] @ weights[:, kept]
        cov = 0.5 * (cov + cov.T)
        eigenvalues, vectors = np.linalg.eigh(cov) if len(cov) else (np.empty(0), cov)
        floor = _EIGEN_FLOOR * max(float(eigenvalues.max(initial=0.0)), 0.0)
        root = np.sqrt(np.where(eigenvalues > floor, eigenvalues, 0.0))
        self._factor = scale * (vectors * root) @ vectors.T

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One function's values at the candidates (the spline's where no draw can win)."""
        out = self.mean.copy()
        out[self.drawn] += self._factor @ rng.standard_normal(self._factor.shape[1])
        return out


def plausible(
    mean: np.ndarray, sd: np.ndarray, z: float = PLAUSIBLE_Z, limit: int | None = None
) -> np.ndarray:
    """Candidates whose draw can be the highest: mean + z sd reaches the best mean - z sd.

    A candidate below that line beats the leader's draw only if one of the
    two strays more than ``z`` of its standard deviations (probability
    below 7e-5 at z = 4 for Gaussian draws), so its draw is not needed to
    find a slot's winner; where a winner is refused and the walk goes on
    down the ranking, such a candidate ranks by its spline value. With a
    ``limit``, only that many of them are kept, those whose mean + z sd is
    highest (z = inf: ranked at :data:`PLAUSIBLE_Z`; ties: the first): in
    high dimensions most of a pool can still win while few points are told,
    and the draws' cost is cubic in them.
    """
    if not len(mean):
        return np.ones(0, dtype=bool)
    if np.isinf(z):
        upper, keep = mean + PLAUSIBLE_Z * sd, np.ones(len(mean), dtype=bool)
    else:
        upper = mean + z * sd
        keep = upper >= float(np.max(mean - z * sd))
    if limit is not None and np.count_nonzero(keep) > limit:
        ranked = np.flatnonzero(keep)[np.argsort(-upper[keep], kind="stable")]
        keep = np.zeros(len(mean), dtype=bool)
        keep[ranked[:limit]] = True
    return keep
