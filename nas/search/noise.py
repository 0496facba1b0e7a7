"""Smoothing for noisy measurements, and the noise sd measured from the data.

Two repeated trainings of one network differ (seeds, data order, non-
deterministic kernels); an interpolating spline then chases the noise and
its argmax chases the luckiest run. A smoothing spline (A + lambda I) trades
fit for smoothness; lambda is picked from :data:`LADDER` (it multiplies the
identity next to the r^3 kernel, so it does not depend on the units of the
metric) by Morozov's discrepancy principle: the largest lambda whose RMS
residual stays within the noise sd -- do not fit the data more closely than
its noise. The sd is either given (``noise = sd``) or measured
(``noise = "auto"``, :func:`estimate_noise`).

**The estimate** is restricted (residual) maximum likelihood (REML, also
"generalized maximum likelihood") of the spline's smoothing model: the
cubic spline with a linear tail and smoothing ``lambda = sigma^2 / b`` is
the best linear predictor of an intrinsic random function of order 1 with
generalized covariance ``b |x - x'|^3`` observed with white noise of
variance ``sigma^2``. Projected on the null space of the tail, ``w = Q_2^T
y``, the data are ``N(0, b K + sigma^2 I)`` with ``K = Q_2^T Phi Q_2``
positive definite (r^3 is conditionally positive definite of order 2); in
the eigenbasis of ``K`` the likelihood is a sum over the eigenvalues, ``b``
profiles out in closed form and lambda is a one-dimensional search (Wahba,
"A comparison of GCV and GML for choosing the smoothing parameter in the
generalized spline smoothing problem", Ann. Statist. 13 (1985) 1378-1402;
Kitanidis, "Statistical estimation of polynomial generalized covariance
functions", Water Resour. Res. 19 (1983) 909-921). Its 95 % interval is
the profile-likelihood interval of sigma (likelihood ratio, chi-square
with one degree of freedom).

Model misfit can pass for noise, so the estimate is used only when

* the support has at least ``3 d`` points and :data:`MIN_DOF` degrees of
  freedom beyond the tail (fewer: the noise is unknown and the spline
  interpolates);
* the likelihood ratio rejects zero noise at 5 % (else unknown, likewise).

Where the metric is much smoother than the spline's model (points spread
evenly over a gentle surface) the likelihood reads small noise as the
model's own roughness and the estimate errs low, towards "unknown"; points
clustered where a search closes in measure it well (benchmarks/results/noise.md).

An unknown noise counts as zero: the exact spline and the configured
tolerance, which is what the search does without the option.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.spatial.distance import cdist

from nas.search.spline import PolyharmonicSpline

#: Smoothing values tried (0 interpolates); ``floor`` removes the smaller ones.
LADDER = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)

#: Fewest degrees of freedom beyond the linear tail (N - d - 1) an estimate needs.
MIN_DOF = 10

#: Support points an estimate needs per dimension (below: model misfit looks like noise).
POINTS_PER_DIM = 3

#: Half the 95 % quantile of chi-square with one degree of freedom: the likelihood drop
#: that bounds the profile-likelihood interval (and the test of zero noise).
LR_HALF_WIDTH = 0.5 * 3.841458820694124

#: Search range of log(lambda / median eigenvalue) for the likelihood's maximum.
LOG_LAMBDA_RANGE = (-30.0, 15.0)


@dataclass(frozen=True)
class NoiseEstimate:
    """The measured noise sd of one support set, in the units of its values.

    ``sd`` is what the search uses (0 when the noise is not measurable:
    ``note`` then says why); ``mle`` is the likelihood's own estimate before
    the checks of :func:`estimate_noise`; ``low``/``high`` its 95 % interval
    (NaN where no estimate was made).
    """

    sd: float
    mle: float = math.nan
    low: float = math.nan
    high: float = math.nan
    support: int = 0
    note: str = ""

    def as_record(self) -> dict[str, float | int | str | None]:
        """The fields as JSON-able values (None for NaN), as the state file stores them."""
        fields = dataclasses.asdict(self)
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in fields.items()}


def smoothing_for(
    points: np.ndarray, values: np.ndarray, sd: float, floor: float = 0.0
) -> PolyharmonicSpline:
    """The spline with the largest smoothing of the ladder whose RMS residual is within ``sd``."""
    if sd <= 0.0:
        return PolyharmonicSpline(points, values, floor)
    ladder = sorted({floor, *(lam for lam in LADDER if lam > floor)})
    fits = [PolyharmonicSpline(points, values, lam) for lam in ladder]
    within = [s for s in fits if _residual_rms(s) <= sd]
    return within[-1] if within else fits[0]


def _residual_rms(spline: PolyharmonicSpline) -> float:
    """RMS of ``y_i - s(x_i)``, which the smoothed system makes ``lambda c_i``: O(N), no evaluation."""
    residual = spline.smoothing_used * spline.coefficients
    return float(np.sqrt(np.mean(residual**2)))


def estimate_noise(points: np.ndarray, values: np.ndarray) -> NoiseEstimate:
    """The noise sd of ``values`` at ``points`` (unit box): REML, checked as the module says.

    Parameters
    ----------
    points : (N, d) ndarray
        Distinct support points.
    values : (N,) ndarray
        Their measurements.
    """
    x = np.asarray(points, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    n, d = x.shape
    if n < POINTS_PER_DIM * d or n - d - 1 < MIN_DOF:
        need = max(POINTS_PER_DIM * d, d + 1 + MIN_DOF)
        return NoiseEstimate(0.0, support=n, note=f"unknown: {n} points, {need} needed")
    eigenvalues, z = _projected(x, y)
    if not np.any(z):
        return NoiseEstimate(0.0, 0.0, 0.0, 0.0, n, "the data are linear")
    profile = _Profile(eigenvalues, z)
    mle = profile.maximum()
    low, high = profile.interval(mle)
    if low <= 0.0:
        return NoiseEstimate(0.0, mle, low, high, n, "unknown: not distinguishable from 0")
    return NoiseEstimate(mle, mle, low, high, n)


def _projected(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of ``K = Q_2^T Phi Q_2`` and the data in its eigenbasis, ``U^T Q_2^T y``."""
    n, d = x.shape
    tail = np.column_stack([np.ones(n), x - x.mean(axis=0)])
    q = np.linalg.qr(tail, mode="complete")[0][:, d + 1 :]
    phi = cdist(x, x) ** 3
    eigenvalues, u = np.linalg.eigh(q.T @ phi @ q)
    return np.maximum(eigenvalues, 0.0), u.T @ (q.T @ y)


class _Profile:
    """The restricted log-likelihood of ``z_i ~ N(0, b e_i + sigma^2)`` and its profiles."""

    def __init__(self, eigenvalues: np.ndarray, z: np.ndarray) -> None:
        self.e, self.z2, self.k = eigenvalues, z**2, len(z)
        #: The sd of the pure-noise model (b = 0): the largest the data can support.
        self.pure = math.sqrt(float(np.mean(self.z2)))
        self.scale = float(np.median(self.e[self.e > 0])) if np.any(self.e > 0) else 1.0

    def loglik(self, b: float, s: float) -> float:
        """Log-likelihood (up to a constant) at process scale ``b`` and noise variance ``s``."""
        v = b * self.e + s
        if np.any(v <= 0.0):
            return -math.inf
        return float(-0.5 * np.sum(np.log(v) + self.z2 / v))

    def _ridge(self, log_lam: float) -> tuple[float, float]:
        """The likelihood with ``b`` profiled out at ``lambda = exp(log_lam) * scale``, and ``b``."""
        v = self.e + math.exp(log_lam) * self.scale
        b = float(np.mean(self.z2 / v))
        return float(-0.5 * (self.k * (math.log(b) + 1.0) + np.sum(np.log(v)))), b

    def maximum(self) -> float:
        """The REML sd: lambda by a grid and a bounded refinement, then ``sigma^2 = lambda b``."""
        grid = np.linspace(*LOG_LAMBDA_RANGE, 181)
        values = [self._ridge(g)[0] for g in grid]
        i = int(np.argmax(values))
        if i == 0:
            return 0.0  # the least smoothing wins: interpolation, no noise
        if i == len(grid) - 1:
            return self.pure
        found = minimize_scalar(
            lambda g: -self._ridge(g)[0], bounds=(grid[i - 1], grid[i + 1]), method="bounded"
        )
        log_lam = float(found.x) if -found.fun >= values[i] else float(grid[i])
        b = self._ridge(log_lam)[1]
        return math.sqrt(math.exp(log_lam) * self.scale * b)

    def of_sd(self, sd: float) -> float:
        """The likelihood at noise sd ``sd``, maximised over the process scale ``b >= 0``."""
        s = sd * sd
        b0 = float(np.mean(self.z2 / np.where(self.e > 0, self.e, np.inf))) or 1.0
        found = minimize_scalar(
            lambda lb: -self.loglik(math.exp(lb), s),
            bounds=(math.log(b0) - 40.0, math.log(b0) + 5.0),
            method="bounded",
        )
        best = -float(found.fun)
        return max(best, self.loglik(0.0, s)) if s > 0.0 else best

    def interval(self, mle: float) -> tuple[float, float]:
        """The 95 % profile-likelihood interval of the sd around ``mle``."""
        top = max(self.of_sd(mle), self._ridge(LOG_LAMBDA_RANGE[0])[0] if mle == 0.0 else -math.inf)
        target = top - LR_HALF_WIDTH

        def above(sd: float) -> float:
            return self.of_sd(sd) - target

        grid = self.pure * np.geomspace(1e-6, 3.0, 61)
        low = 0.0 if self.of_sd(0.0) >= target else _crossing(above, grid[grid < mle][::-1], mle)
        high = _crossing(above, grid[grid > mle], mle)
        return low, high


def _crossing(above, grid: np.ndarray, start: float) -> float:
    """Where ``above`` turns negative walking from ``start`` over ``grid`` (its last point if never)."""
    previous = start
    if above(start) < 0.0:  # the maximum itself is not resolved any better
        return start
    for sd in grid:
        if above(sd) < 0.0:
            return float(brentq(above, min(previous, sd), max(previous, sd), xtol=1e-6 * sd))
        previous = sd
    return float(grid[-1]) if len(grid) else start
