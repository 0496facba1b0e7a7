"""An error estimate for a spline prediction, from the spline's leave-one-out errors.

The spline interpolates, so it carries no variance of its own. What it does
carry is how far it missed each measured point when that point was left out
(Rippa's closed form, computed once per spline): the error of a prediction
at the distance that point had from the others. A prediction at ``x`` is
given the root mean square, over the ``k`` measured points nearest ``x``
(``k = d + 1`` by default: the smallest set that determines a linear trend
there), of their leave-one-out errors, each scaled by
``(r / h_j) ** DISTANCE_POWER``: ``r`` is the distance of ``x`` to the
nearest measured point, ``h_j`` that of point ``j`` to its nearest other
one. At a measured point the estimate is 0 (the spline interpolates it);
where the spline could not predict its neighbours when they were left out,
or ``x`` lies far from the data, it is large.

This is an empirical rule, not a probability model: the share of held-out
measurements that fall inside ``prediction +/- error`` is measured by
``benchmarks/calibration.py`` and stated in the README.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

_TINY = 1e-12


#: The error of a spline with a linear tail grows about as the square of the distance
#: to the data; 2 is also what makes the estimate cover held-out points far from the
#: data as well as near it (``benchmarks/calibration.py``; 0 and 1 cover far fewer).
DISTANCE_POWER = 2.0


class SupportedSpline(Protocol):
    """What the rule reads of a spline: its support points and their leave-one-out errors."""

    points: np.ndarray

    def loo_errors(self) -> np.ndarray: ...


def local_error(spline: SupportedSpline, x: np.ndarray, k: int | None = None) -> np.ndarray:
    """RMS leave-one-out error of the ``k`` support points nearest each row of ``x``.

    Parameters
    ----------
    spline
        A fitted spline (or category view) with ``points`` (N, d) and ``loo_errors()``.
    x : (M, d) or (d,) array
        Unit-box points.
    k : int, optional
        Neighbours per point; default ``d + 1``, at most N.

    Returns
    -------
    (M,) array, or a scalar array for one point
        ``inf`` where none of the neighbours has a defined leave-one-out error
        (e.g. exactly d+1 support points): unknown is not small.
    """
    arr = np.asarray(x, dtype=float)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    support = np.asarray(spline.points, dtype=float)
    errors = np.asarray(spline.loo_errors(), dtype=float)
    n, d = support.shape
    k = min(d + 1 if k is None else int(k), n)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    distance = np.sqrt(((arr[:, None, :] - support[None, :, :]) ** 2).sum(axis=2))
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    near = errors[nearest]
    gap = np.sqrt(((support[:, None, :] - support[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(gap, np.inf)
    spacing = gap.min(axis=1)  # how far each point was from the rest when it was left out
    ratio = distance.min(axis=1, keepdims=True) / np.maximum(spacing[nearest], _TINY)
    near = near * ratio**DISTANCE_POWER
    finite = np.isfinite(near)
    count = finite.sum(axis=1)
    squares = np.where(finite, near, 0.0) ** 2
    out = np.full(arr.shape[0], math.inf)
    ok = count > 0
    out[ok] = np.sqrt(squares[ok].sum(axis=1) / count[ok])
    return out[0] if single else out
