"""Input warping: a logarithmic scale for the dimensions the data say want one.

Widths, depths and batch sizes act on a network roughly by their logarithm:
going from 16 to 32 channels changes far more than going from 512 to 528.
A user who declares such a dimension with ``log = true`` gives the spline
coordinates in which the metric is smooth; one who does not (the common
case, and the benchmark's NAS-shaped problems) leaves the cubic spline to
bend steeply at the low end of the range and overshoot at the other.

The warp here is chosen from the data: each positive numeric dimension the
user did not declare logarithmic is, in the spline's inputs only, either
kept or mapped to ``log(v / low) / log(high / low)`` (the same unit interval,
logarithmically), whichever gives the smaller leave-one-out error of the
interpolant (Rippa's formula, no refits per left-out point; Rippa, Adv.
Comput. Math. 11, 1999). The choice is greedy, one dimension at a time, two
passes at most. Snoek, Swersky, Zemel & Adams (ICML 2014, "Input warping for
Bayesian optimization of non-stationary functions") learn continuous Beta
warps of a Gaussian process's inputs by its likelihood; a choice between two
warps by cross-validation has far fewer degrees of freedom to overfit with
the few dozen points of a NAS campaign (continuous per-dimension length
scales chosen the same way were slower, ``benchmarks/results/warping.md``).

Everything else keeps the unit box: candidates, distances, radii, snapping
and the design. :class:`WarpedSpline` reads like a
:class:`~nas.search.spline.PolyharmonicSpline` over unit coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nas.search.spline import MEMORY_BUDGET, PolyharmonicSpline, SplineError

#: Passes of the greedy choice over the candidate dimensions.
PASSES = 2
#: The warp is chosen only from at least this many points per spline coefficient of the
#: linear tail (d + 1): with fewer, a leave-one-out error says more about the design than
#: about the scale.
POINTS_PER_TAIL_COEFFICIENT = 2

#: A switch is kept only where it lowers the leave-one-out error by more than this share.
#: 0: any decrease. 0.1 kept fewer spurious switches on noisy data without a ``noise``
#: setting, but lost most of the gain on noise-free problems
#: (``benchmarks/results/warping.md``, development runs).
MARGIN = 0.0

#: Builds a spline (exact, smoothed or capped) through unit points and values.
Fit = Callable[[np.ndarray, np.ndarray], PolyharmonicSpline]


@dataclass(frozen=True)
class Warp:
    """Per-dimension map of unit coordinates to the spline's inputs.

    Attributes
    ----------
    logarithmic : ndarray of bool, shape (d,)
        Dimensions mapped logarithmically; the others are kept.
    low, high : ndarray, shape (d,)
        The dimensions' bounds in their own units (``low > 0`` where
        ``logarithmic``); unit 0 is ``low``, unit 1 ``high``.
    """

    logarithmic: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def identity(self) -> bool:
        """True when no dimension is warped."""
        return not bool(self.logarithmic.any())

    def _parts(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.logarithmic
        value = self.low[m] + u[..., m] * (self.high[m] - self.low[m])
        return m, value, np.log(self.high[m] / self.low[m])

    def forward(self, u: np.ndarray) -> np.ndarray:
        """The spline's inputs at unit points ``u`` (shape (..., d))."""
        out = np.array(u, dtype=np.float64)
        if self.identity:
            return out
        m, value, span = self._parts(out)
        out[..., m] = np.log(value / self.low[m]) / span
        return out

    def derivative(self, u: np.ndarray) -> np.ndarray:
        """d forward / d u per coordinate at ``u`` (the warp is separable)."""
        arr = np.asarray(u, dtype=np.float64)
        out = np.ones_like(arr)
        if self.identity:
            return out
        m, value, span = self._parts(arr)
        out[..., m] = (self.high[m] - self.low[m]) / (value * span)
        return out

    def names(self, dimensions: list[str]) -> list[str]:
        """The names of the warped dimensions among ``dimensions`` (in order)."""
        return [name for name, on in zip(dimensions, self.logarithmic, strict=False) if on]


def warp_of(logarithmic: np.ndarray, low: np.ndarray, high: np.ndarray) -> Warp:
    """The warp of the ``logarithmic`` dimensions with their bounds.

    The other dimensions' bounds are never read; they are set to (1, 2), so
    a dimension that may reach 0 or below (or an indicator column) needs no
    bounds of its own.
    """
    on = np.asarray(logarithmic, dtype=bool)
    return Warp(on, np.where(on, low, 1.0), np.where(on, high, 2.0))


def identity_warp(d: int) -> Warp:
    """No dimension warped."""
    return warp_of(np.zeros(d, dtype=bool), np.ones(d), np.ones(d))


class WarpedSpline:
    """A spline fitted on warped inputs, read over unit coordinates.

    ``points`` are the unit points (what distances, candidates and the
    hard rules of a proposal use); evaluation and the gradient apply the warp
    first (the gradient by the chain rule, so the argmax's polish works in
    unit coordinates). Leave-one-out errors, smoothing and coefficients are
    the inner spline's.
    """

    def __init__(self, inner: PolyharmonicSpline, warp: Warp, points: np.ndarray) -> None:
        self.inner = inner
        self.warp = warp
        self.points: np.ndarray = np.asarray(points, dtype=np.float64)
        self.values: np.ndarray = inner.values
        self.smoothing = inner.smoothing
        self.smoothing_used = inner.smoothing_used
        self.conditioning = inner.conditioning
        self.coefficients = inner.coefficients
        self.poly = inner.poly

    @property
    def d(self) -> int:
        return self.inner.d

    def __call__(self, x: np.ndarray, memory_budget: int = MEMORY_BUDGET) -> np.ndarray:
        return self.inner(self.warp.forward(x), memory_budget)

    def gradient(self, x: np.ndarray, memory_budget: int = MEMORY_BUDGET) -> np.ndarray:
        return self.inner.gradient(self.warp.forward(x), memory_budget) * self.warp.derivative(x)

    def loo_errors(self) -> np.ndarray:
        return self.inner.loo_errors()

    def kernel_frame(self, x: np.ndarray) -> tuple[PolyharmonicSpline, np.ndarray]:
        """The inner spline and ``x`` warped: the kernel lives in the warped coordinates."""
        return self.inner.kernel_frame(self.warp.forward(x))

    @property
    def loo_rmse(self) -> float:
        return self.inner.loo_rmse

    def refit(self, points: np.ndarray, values: np.ndarray) -> WarpedSpline:
        """The same warp and smoothing through other unit points (a batch's fantasies)."""
        return WarpedSpline(self.inner.refit(self.warp.forward(points), values), self.warp, points)


def fit_warped(x: np.ndarray, y: np.ndarray, warp: Warp, fit: Fit) -> PolyharmonicSpline:
    """``fit`` through the warped ``x``; the plain spline when the warp is the identity."""
    return over_unit(fit(warp.forward(x), y), warp, x)


def over_unit(inner: PolyharmonicSpline, warp: Warp, x: np.ndarray) -> PolyharmonicSpline:
    """``inner`` (fitted on ``warp.forward(x)``) read over the unit points ``x``."""
    if warp.identity:
        return inner
    return WarpedSpline(inner, warp, x)  # type: ignore[return-value]


@dataclass(frozen=True)
class WarpChoice:
    """A chosen warp and the interpolant that scored it.

    ``spline`` is the interpolant with the chooser's smoothing on the warp's
    inputs (None where no fit was needed: too few points, no candidate). An
    exact search fits exactly that spline next, so it is handed on rather
    than fitted twice (one O(N^3) solve per refit: 0.2-0.4 s at 2,000-2,500 points,
    `benchmarks/status_scale.py --positive`).
    """

    warp: Warp
    spline: PolyharmonicSpline | None = None


def choose(x: np.ndarray, y: np.ndarray, candidates: Warp, smoothing: float = 0.0) -> WarpChoice:
    """The warp of ``candidates``' dimensions with the smallest leave-one-out error.

    ``candidates.logarithmic`` marks the dimensions that may be warped
    (positive bounds, not declared logarithmic); the result warps a subset
    of them. Greedy: starting from no warp, each candidate is switched
    where that lowers the root-mean-square leave-one-out error of the
    interpolant with ``smoothing``, for :data:`PASSES` passes or until none
    does. Too few points (:data:`POINTS_PER_TAIL_COEFFICIENT`) or no
    candidate: the identity, and no spline.
    """
    n, d = x.shape
    chosen = warp_of(np.zeros(d, dtype=bool), candidates.low, candidates.high)
    allowed = np.flatnonzero(candidates.logarithmic)
    if not allowed.size or n < POINTS_PER_TAIL_COEFFICIENT * (d + 1):
        return WarpChoice(chosen)
    best, spline = _loo_rmse(x, y, chosen, smoothing)
    for _ in range(PASSES):
        changed = False
        for j in allowed:
            mask = chosen.logarithmic.copy()
            mask[j] = not mask[j]
            trial = Warp(mask, candidates.low, candidates.high)
            error, fitted = _loo_rmse(x, y, trial, smoothing)
            if error < best * (1.0 - MARGIN):
                chosen, best, spline, changed = trial, error, fitted, True
        if not changed:
            break
    return WarpChoice(chosen, spline)


def _loo_rmse(
    x: np.ndarray, y: np.ndarray, warp: Warp, smoothing: float
) -> tuple[float, PolyharmonicSpline | None]:
    """Root-mean-square leave-one-out error of the interpolant on warped ``x`` (inf: no fit),
    and the interpolant (None where it could not be fitted)."""
    try:
        spline = PolyharmonicSpline(warp.forward(x), y, smoothing)
        errors = spline.loo_errors()
    except SplineError:
        return np.inf, None
    errors = errors[np.isfinite(errors)]
    return (float(np.sqrt(np.mean(errors**2))) if errors.size else np.inf), spline
