"""Smoothing for noisy measurements: chosen per fit from the data, not guessed.

Two repeated trainings of one network differ (seeds, data order, non-
deterministic kernels); an interpolating spline then chases the noise and
its argmax chases the luckiest run. A smoothing spline (A + lambda I) trades
fit for smoothness; lambda is picked from :data:`LADDER` (it multiplies the
identity next to the r^3 kernel, so it does not depend on the units of the
metric):

* ``noise = "auto"``: the lambda with the least leave-one-out RMS error
  (Rippa's formula, exact for the smoothed system too). Leave-one-out
  cross-validation is the standard choice of the smoothing parameter of
  thin-plate and polyharmonic splines (Wahba, *Spline Models for
  Observational Data*, 1990, ch. 4; GCV is its rotation-invariant form);
* ``noise = sd`` (a known run-to-run sd): the largest lambda whose RMS
  residual stays within the sd -- Morozov's discrepancy principle: do not
  fit the data more closely than its noise.
"""

from __future__ import annotations

import numpy as np

from nas.search.spline import PolyharmonicSpline

#: Smoothing values tried (0 interpolates); ``floor`` removes the smaller ones.
LADDER = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)


def choose_smoothing(
    points: np.ndarray, values: np.ndarray, noise: float | str, floor: float = 0.0
) -> PolyharmonicSpline:
    """The spline through ``(points, values)`` with the smoothing that ``noise`` asks for.

    Parameters
    ----------
    points, values : ndarray
        Support points (unit box) and measurements.
    noise : float or "auto"
        Known noise sd, or ``"auto"`` for leave-one-out.
    floor : float
        The configured smoothing: no smaller value is used.
    """
    ladder = sorted({floor, *(lam for lam in LADDER if lam > floor)})
    fits = [PolyharmonicSpline(points, values, lam) for lam in ladder]
    if noise == "auto":
        scores = [_loo_rms(spline) for spline in fits]
        return fits[int(np.nanargmin(scores))] if np.isfinite(scores).any() else fits[0]
    within = [s for s in fits if _residual_rms(s) <= float(noise)]
    return within[-1] if within else fits[0]


def _loo_rms(spline: PolyharmonicSpline) -> float:
    errors = spline.loo_errors()
    return float(np.sqrt(np.nanmean(errors**2))) if np.isfinite(errors).any() else np.nan


def _residual_rms(spline: PolyharmonicSpline) -> float:
    """RMS of ``y_i - s(x_i)``, which the smoothed system makes ``lambda c_i``: O(N), no evaluation."""
    residual = spline.smoothing_used * spline.coefficients
    return float(np.sqrt(np.mean(residual**2)))
