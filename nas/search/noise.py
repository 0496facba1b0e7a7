"""Smoothing for noisy measurements, and the noise sd measured from the data.

Two repeated trainings of one network differ (seeds, data order, non-
deterministic kernels); an interpolating spline then chases the noise and
its argmax chases the luckiest run. A smoothing spline (A + lambda I) trades
fit for smoothness. lambda multiplies the identity next to the r^3 kernel
and is the noise-to-signal ratio of the model below, ``sigma^2 / b``: given
the noise sd, ``b`` is the process scale the data make most likely
(:func:`likelihood_smoothing`), so the spline is the best linear predictor
of the model with that noise (with ``noise = "auto"`` it is the REML
smoothing itself). Morozov's discrepancy principle (the largest lambda whose
RMS residual stays within the sd) was used before: it over-smooths, since
the residual of the best predictor is below the sd by the share of the
noise it keeps, and flattened the peak the search climbs (on the NAS-shaped
``nas5`` with noise 1 % of the range the best point evaluated in 80 had
median regret 0.86 % with it, 0.35 % with this rule and 0.41 % with the
exact spline: ``benchmarks/results/noise.md``). The sd is either given
(``noise = sd``) or measured (``noise = "auto"``, :func:`estimate_noise`).

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

#: Largest smoothing used (in the units of the r^3 kernel on the unit box): data that look
#: like pure noise get a spline that is almost its linear tail, not a singular solve.
MAX_SMOOTHING = 10.0

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
    """The smoothing spline of data with noise sd ``sd``: lambda by :func:`likelihood_smoothing`."""
    return smooth_fit(points, values, sd, floor)[0]


def smooth_fit(
    points: np.ndarray, values: np.ndarray, noise: float | str, floor: float = 0.0
) -> tuple[PolyharmonicSpline, NoiseEstimate | None]:
    """The smoothing spline of noisy data, and with ``noise = "auto"`` the estimate it used.

    ``noise`` is the sd, or ``"auto"`` to measure it (:func:`estimate_noise`);
    lambda is :func:`likelihood_smoothing`'s, never below ``floor``. The
    estimate and the smoothing share one projection of the data: its
    eigendecomposition is the O(N^3) part of both.
    """
    x = np.asarray(points, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    estimate, profile = _estimate(x, y) if noise == "auto" else (None, None)
    sd = estimate.sd if estimate is not None else float(noise)
    if sd <= 0.0:
        return PolyharmonicSpline(x, y, floor), estimate
    lam = _smoothing(profile if profile is not None else _profile(x, y), sd)
    return PolyharmonicSpline(x, y, max(floor, lam)), estimate


def likelihood_smoothing(points: np.ndarray, values: np.ndarray, sd: float) -> float:
    """lambda = sigma^2 / b, with b the process scale most likely given noise sd ``sd``.

    The smoothing that makes the spline the best linear predictor under the
    module's model when the noise is ``sd``: with ``sd`` the REML estimate it
    is the REML smoothing itself. At most :data:`MAX_SMOOTHING` (data that
    look like pure noise: the spline is then almost its linear tail).
    """
    x = np.asarray(points, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    return _smoothing(_profile(x, y), sd)


def _smoothing(profile: _Profile | None, sd: float) -> float:
    """:func:`likelihood_smoothing` of a projected data set (None: linear data, 0)."""
    if profile is None:
        return 0.0  # linear data: nothing to smooth
    scale = profile.most_likely_scale(sd * sd)
    return MAX_SMOOTHING if scale <= 0.0 else min(sd * sd / scale, MAX_SMOOTHING)


def estimate_noise(points: np.ndarray, values: np.ndarray) -> NoiseEstimate:
    """The noise sd of ``values`` at ``points`` (unit box): REML, checked as the module says.

    Parameters
    ----------
    points : (N, d) ndarray
        Distinct support points.
    values : (N,) ndarray
        Their measurements.
    """
    return _estimate(np.asarray(points, dtype=np.float64), np.asarray(values, dtype=np.float64))[0]


def _estimate(x: np.ndarray, y: np.ndarray) -> tuple[NoiseEstimate, _Profile | None]:
    """:func:`estimate_noise`, with the likelihood it was read from (None: none was needed)."""
    n, d = x.shape
    if n < POINTS_PER_DIM * d or n - d - 1 < MIN_DOF:
        need = max(POINTS_PER_DIM * d, d + 1 + MIN_DOF)
        return NoiseEstimate(0.0, support=n, note=f"unknown: {n} points, {need} needed"), None
    profile = _profile(x, y)
    if profile is None:
        return NoiseEstimate(0.0, 0.0, 0.0, 0.0, n, "the data are linear"), None
    mle = profile.maximum()
    low, high = profile.interval(mle)
    if low <= 0.0:
        note = "unknown: not distinguishable from 0"
        return NoiseEstimate(0.0, mle, low, high, n, note), profile
    return NoiseEstimate(mle, mle, low, high, n), profile


def _profile(x: np.ndarray, y: np.ndarray) -> _Profile | None:
    """The restricted likelihood of the data (None: linear data, nothing beyond the tail)."""
    eigenvalues, z = _projected(x, y)
    return _Profile(eigenvalues, z) if np.any(z) else None


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

    def _scale_search(self, s: float) -> tuple[float, float]:
        """The likelihood's maximum over ``b > 0`` at noise variance ``s``, and its ``b``."""
        b0 = float(np.mean(self.z2 / np.where(self.e > 0, self.e, np.inf)))
        if not (math.isfinite(b0) and b0 > 0.0):
            b0 = 1.0
        found = minimize_scalar(
            lambda lb: -self.loglik(math.exp(lb), s),
            bounds=(math.log(b0) - 40.0, math.log(b0) + 5.0),
            method="bounded",
        )
        return -float(found.fun), math.exp(float(found.x))

    def most_likely_scale(self, s: float) -> float:
        """The process scale ``b >= 0`` most likely at noise variance ``s`` (0: pure noise)."""
        best, b = self._scale_search(s)
        return 0.0 if s > 0.0 and self.loglik(0.0, s) > best else b

    def of_sd(self, sd: float) -> float:
        """The likelihood at noise sd ``sd``, maximised over the process scale ``b >= 0``."""
        s = sd * sd
        best = self._scale_search(s)[0]
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
