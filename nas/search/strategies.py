"""Proposal strategies: how candidates are made and ranked; :mod:`nas.search.propose` enforces the rules.

``"paper"`` (:class:`PaperStrategy`) is Algorithm 1 as published: the snapped
argmax of the spline s first. ``"default"`` (:class:`DefaultStrategy`) keeps s
and the stopping rule but changes the candidates: perturbations of the best
measured point (as in DYCORS, Regis & Shoemaker, Eng. Optim. 45(5), 2013),
uniform points and Algorithm 1's own samples. It **exploits** (ranks by s)
while the best predicted gain exceeds ``gain_rtol`` of the measured range,
else **explores locally** with the stochastic-RBF merit w*S + (1-w)*D (Regis &
Shoemaker, INFORMS J. Computing 19(4), 2007), w cycling through
``WEIGHT_CYCLE``; the perturbation radius halves after ``max(4, d)`` points
without improvement. In a batch, slot 1 is that ranking's head; slots 2..q
(``batch_fill``) are perturbations of the incumbent made by DYCORS's rules
(:mod:`nas.search.dycors`), each slot the best of its own draw from the
spline's posterior (:mod:`nas.search.posterior`), or with ``"dycors"`` by
the same merit with w cycling through ``BATCH_WEIGHTS`` and D counting the
slots already chosen (pySOT's batch mode; :mod:`nas.search.batch`), where
Algorithm 1 fills by the believer rule; ``batch_fill = "liar"`` makes each slot the default
ranking's head again on the spline refitted to the slots before it, each
taken as measured a little below its prediction. With categorical dimensions the optimizer hands
``"default"`` one spline over the numeric coordinates and category indicators
(:mod:`nas.search.categories`), so the incumbent, the perturbations and the
argmax range over the categories together; ``"paper"`` ranks each category's
own spline. The evidence and the variants tried are in
``benchmarks/results/sample_efficiency.md`` (``benchmarks/sample_efficiency.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.spatial import cKDTree

from nas.search.dycors import adapted_radius, perturbation_probability, subspace_perturb
from nas.search.maximize import (
    Mask,
    Neighbours,
    best_admissible,
    best_admissible_samples,
    legal_maxima,
)
from nas.search.rows import rows_in
from nas.search.settings import BATCH_FILLS
from nas.search.spline import PolyharmonicSpline

Snap = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Ranking:
    """Legal unit-box candidates of one category, best first, with comparable scores."""

    points: np.ndarray
    scores: np.ndarray


class Strategy(Protocol):
    """Ranks candidates of one category; :func:`propose` enforces the hard rules.

    ``spline`` is fitted to the measured (and, within a batch, fantasy)
    points, ``avoid`` holds the unit points of this category that are
    pending, failed or already proposed, ``snap`` maps unit points to legal
    ones and ``neighbours`` gives the legal points around a unit point
    (:meth:`nas.search.space.SearchSpace.lattice_neighbours`). Scores order
    one category's candidates (higher is better); across categories
    :func:`nas.search.propose.propose` compares the heads' predicted values,
    or their scores where a strategy declares ``scores_are_values = True``
    (its scores are the spline's values, as Algorithm 1's are). ``in_batch``: the
    ranking heads a batch of more than one proposal. ``admissible`` marks
    the unit points the feasibility rules allow (None: all): a strategy
    maximises over those, since the rules refuse the others anyway.
    ``told`` (None: ``spline.values``) are the measured values in told order
    when ``spline`` was fitted to other ones (capped,
    :func:`nas.search.optimizer.capped_values`): rules that scale with the
    measurements (a gain worth exploiting, a stalled best) read them.
    """

    def rank(
        self,
        spline: PolyharmonicSpline,
        *,
        snap: Snap,
        avoid: np.ndarray,
        rng: np.random.Generator,
        neighbours: Neighbours | None = None,
        in_batch: bool = False,
        admissible: Mask | None = None,
        told: np.ndarray | None = None,
    ) -> Ranking: ...


@runtime_checkable
class DiverseBatches(Protocol):
    """A strategy whose batch slots 2..q may come from a pool ranked by merit, not the believer rule.

    ``batch_candidates`` gives the legal unit points slots 2..q are drawn
    from, knowing the batch's first proposal and the batch size q;
    :mod:`nas.search.batch` ranks them by ``batch_weights``. With
    ``batch_fill = "believer"``, and for strategies without these
    (Algorithm 1), batches are filled by the believer rule; with
    ``"thompson"`` by draws from the spline's posterior whose standard
    deviation ``thompson_spread`` scales (:class:`nas.search.batch.ThompsonPool`).
    """

    batch_weights: tuple[float, ...]
    batch_fill: str
    thompson_spread: float

    def batch_candidates(
        self,
        spline: PolyharmonicSpline,
        first: np.ndarray,
        *,
        snap: Snap,
        rng: np.random.Generator,
        q: int,
    ) -> np.ndarray: ...


@runtime_checkable
class Fantasies(Protocol):
    """A strategy that says what value a chosen batch slot joins the spline with.

    The believer rule takes the prediction; ``batch_fill = "liar"`` takes
    less (:meth:`DefaultStrategy.fantasy_value`).
    """

    def fantasy_value(self, predicted: float, values: np.ndarray) -> float: ...


def spline_maxima(
    spline: PolyharmonicSpline,
    snap: Snap,
    neighbours: Neighbours | None,
    rng: np.random.Generator,
    n_samples: int | None = None,
    admissible: Mask | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples of the search for max s with their values, and the best (admissible) legal
    points it found."""
    extra = {} if n_samples is None else {"n_samples": n_samples}
    return legal_maxima(
        spline,
        spline.d,
        gradient=spline.gradient,
        support=spline.points,
        snap=snap,
        neighbours=neighbours,
        seed=rng,
        admissible=admissible,
        **extra,
    )


class PaperStrategy:
    """Algorithm 1: every legal candidate of the search for max s, ranked by s.

    The head is the legal argmax of s: hierarchical samples, polished and
    moved to the best point of their integer neighbourhood.
    """

    #: The scores are s itself, comparable across the splines of categories.
    scores_are_values = True

    def rank(
        self,
        spline: PolyharmonicSpline,
        *,
        snap: Snap,
        avoid: np.ndarray,
        rng: np.random.Generator,
        neighbours: Neighbours | None = None,
        in_batch: bool = False,
        admissible: Mask | None = None,
        told: np.ndarray | None = None,
    ) -> Ranking:
        x, fx, legal = spline_maxima(spline, snap, neighbours, rng, admissible=admissible)
        snapped = snap(x)  # repeats are thinned by the walk
        values = fx.copy()  # s where snapping moved nothing (float dimensions) is known
        moved = np.flatnonzero((snapped != x).any(axis=1))
        if moved.size:
            values[moved] = spline(snapped[moved])
        return _by_score(np.vstack([legal, snapped]), np.concatenate([spline(legal), values]))


#: Merit weights on the spline value in exploration steps; the rest goes to distance.
WEIGHT_CYCLE = (0.7, 0.95)
#: Merit weights on the spline value for batch slots 2, 3, ... (:mod:`nas.search.batch`).
BATCH_WEIGHTS = (0.95, 0.9, 0.8)
#: The "liar" fill's lie: a chosen slot joins the spline at its prediction less this
#: share of the range of the values the spline was fitted to.
BATCH_LIE = 0.02


@dataclass(frozen=True)
class DefaultStrategy:
    """Argmax of the spline while it promises a gain, else a local distance-weighted merit.

    Attributes
    ----------
    n_local, n_global, n_argmax : int
        Perturbation candidates around the incumbent, uniform candidates, and the
        best points of the hierarchical search for max s.
    sigma_init, sigma_min : float
        Perturbation radius (unit box) at the start and its floor.
    weights : tuple of float
        Cycle of merit weights on the spline value in exploration steps, each in [0, 1].
    gain_rtol : float
        Exploit while the best candidate's predicted gain over the best measured
        value exceeds this fraction of the measured range.
    batch_weights : tuple of float
        Merit weights on the spline value for batch slots 2, 3, ... (cycled, each
        in [0, 1]); see :mod:`nas.search.batch`.
    batch_head_weight : float
        Merit weight of a batch's first proposal in exploration steps. Fixed,
        not cycled: batches that add an even number of points would keep the
        cycle's phase anyway, so which weight heads got depended on the parity
        of the design's size. The cycle's value-led weight: at 0.7 the head
        lands far from the best, is measured worse than predicted and keeps
        the stop rule's (a) from holding: 39 of 90 batch searches of four
        reached the budget at 0.7, 26 at 0.95, with evaluations to 1 % regret
        unchanged (benchmarks/results/stop_rule.md, "The axis check by merit
        and the value-led batch head"; batch_fill.md compares 0.95 and
        alternating).
    batch_fill : str
        How slots 2..q are chosen (:data:`nas.search.settings.BATCH_FILLS`):
        ``"thompson"`` (the default) gives each slot the best DYCORS
        candidate of its own draw from the spline's posterior
        (:mod:`nas.search.posterior`; fewer problems above 1.2x of single
        proposals' evaluations than ``"dycors"`` per twenty seeds,
        benchmarks/results/batch_fill.md, "Thompson is the default fill"),
        ``"dycors"`` ranks DYCORS candidates (:mod:`nas.search.dycors`:
        coordinate subsets, an adapted radius, ``dycors_per_dim`` d of
        them around the best measured point) by merit, ``"merit"`` Gaussian
        perturbations of every coordinate at the single-proposal radius
        (around the best point and slot 1), ``"believer"`` takes
        each slot's prediction as measured and ranks again, ``"liar"``
        the same with the prediction less ``BATCH_LIE`` of the told range
        (:meth:`fantasy_value`).
    thompson_spread : float
        Multiplies the posterior's standard deviation in ``"thompson"``
        draws. At 1 (the fitted amplitude) the fills strayed from the best
        and needed more evaluations to 1 % regret on the 8-dimensional
        problems (nas8h 46 against 39 at 0.3); 0.15, 0.3 and 0.5 differed by
        no more than the seeds do (benchmarks/results/batch_fill.md,
        "Thompson sampling").
    dycors_per_dim, dycors_horizon_per_dim : int
        DYCORS candidates and the horizon of its perturbation schedule, each
        times d. 200 d, where pySOT draws 100 d: the pool kept the size it had
        with two centres, and 100 d was slower to 1 % regret on four of six
        NAS-shaped problems (benchmarks/results/batch_fill.md).
    """

    n_local: int = 2000
    n_global: int = 1000
    n_argmax: int = 256
    sigma_init: float = 0.2
    sigma_min: float = 0.2 * 0.5**5
    weights: tuple[float, ...] = WEIGHT_CYCLE
    gain_rtol: float = 3e-3
    batch_weights: tuple[float, ...] = BATCH_WEIGHTS
    batch_head_weight: float = WEIGHT_CYCLE[1]
    batch_fill: str = BATCH_FILLS[0]
    thompson_spread: float = 0.3
    dycors_per_dim: int = 200
    dycors_horizon_per_dim: int = 10

    def __post_init__(self) -> None:
        counts = (self.n_local, self.n_global, self.n_argmax)
        if min(counts) < 0 or sum(counts) < 1:
            raise ValueError(
                f"n_local, n_global, n_argmax = {counts} must be >= 0 with at least one candidate"
            )
        if not 0 < self.sigma_min <= self.sigma_init:
            raise ValueError(
                f"need 0 < sigma_min <= sigma_init, got {self.sigma_min} and {self.sigma_init}"
            )
        for name in ("weights", "batch_weights"):
            cycle = getattr(self, name)
            if not cycle or not all(0.0 <= w <= 1.0 for w in cycle):
                raise ValueError(f"{name} must be a non-empty cycle in [0, 1], got {cycle}")
        if not 0.0 <= self.batch_head_weight <= 1.0:
            raise ValueError(f"batch_head_weight must be in [0, 1], got {self.batch_head_weight}")
        if not 0.0 <= self.gain_rtol < 1.0:
            raise ValueError(f"gain_rtol must be in [0, 1), got {self.gain_rtol}")
        if self.batch_fill not in BATCH_FILLS:
            raise ValueError(f"batch_fill must be one of {BATCH_FILLS}, got {self.batch_fill!r}")
        if not self.thompson_spread >= 0.0:
            raise ValueError(f"thompson_spread must be >= 0, got {self.thompson_spread}")
        if min(self.dycors_per_dim, self.dycors_horizon_per_dim) < 1:
            raise ValueError(
                "dycors_per_dim and dycors_horizon_per_dim must be >= 1, got "
                f"{self.dycors_per_dim} and {self.dycors_horizon_per_dim}"
            )

    def rank(
        self,
        spline: PolyharmonicSpline,
        *,
        snap: Snap,
        avoid: np.ndarray,
        rng: np.random.Generator,
        neighbours: Neighbours | None = None,
        in_batch: bool = False,
        admissible: Mask | None = None,
        told: np.ndarray | None = None,
    ) -> Ranking:
        """Candidates best first; measured and avoided points excluded.

        An exploitation step ranks every candidate by s. It is one while the
        best admissible candidate promises the gain: under a bound, a gain
        beyond the bound is no reason to exploit. An exploration step
        ranks the perturbations by merit (scores in [0, 1]) and the other
        candidates after them by s (scores in [-2, -1]), so the hard rules of
        :func:`nas.search.propose` can still be met when every perturbation is
        rejected. A single proposal's exploration weight cycles with the
        number of measured points; a batch head's is ``batch_head_weight``.
        """
        points, values = spline.points, spline.values
        told = values if told is None else np.asarray(told, dtype=np.float64)
        d = points.shape[1]
        sigma = self.radius(told, d)
        local = snap(perturb(points[int(np.argmax(values))], sigma, self.n_local, rng))
        near = self.near_argmax(spline, rng, snap, neighbours, admissible)
        wide = np.vstack([snap(rng.random((self.n_global, d))), near])
        existing = known_points(points, avoid)
        legal, _ = fresh_candidates(np.vstack([local, wide]), existing)
        s = spline(legal)
        top = best_admissible(s, legal, admissible)
        if top is not None and s[top] - values.max() > self.gain_rtol * float(np.ptp(told)):
            return _by_score(legal, unit_scale(s))
        near, distance = fresh_candidates(local, existing)
        if admissible is not None and near.size:  # the merit's scales: of the points it may pick
            keep = admissible(near)
            near, distance = near[keep], distance[keep]
        w = self.batch_head_weight if in_batch else self.weights[len(values) % len(self.weights)]
        head = _by_score(near, merit(spline(near), distance, w))
        rest = ~rows_in(legal, near)
        tail = _by_score(legal[rest], unit_scale(s[rest]) - 2.0)
        return Ranking(
            np.vstack([head.points, tail.points]), np.concatenate([head.scores, tail.scores])
        )

    def batch_candidates(
        self,
        spline: PolyharmonicSpline,
        first: np.ndarray,
        *,
        snap: Snap,
        rng: np.random.Generator,
        q: int,
    ) -> np.ndarray:
        """Legal points for slots 2..q: perturbations of the incumbent (and of ``first``).

        ``"dycors"`` perturbs the best measured point only, as pySOT's DYCORS
        does: a scheduled subset of coordinates moves by the radius its batch
        counters give. Perturbations of ``first`` (the batch's first proposal,
        the spline's argmax, not measured yet) were the pool's other half
        before; they crowd the fills round a point whose outcome they share:
        where the argmax disappoints, its neighbours do too, and the batch
        learns one thing four times. Around the best the fills are partial
        steps the spline rates well, each worth measuring whatever slot 1
        gives, and fewer evaluations reached 1 % regret on every NAS-shaped
        problem (benchmarks/results/batch_fill.md). ``"merit"`` (the fill
        before DYCORS's rules, kept as it was measured) moves every
        coordinate of both points by the single-proposal radius
        (:meth:`radius`).
        """
        values, d = spline.values, spline.d
        incumbent = spline.points[int(np.argmax(values))]
        if self.batch_fill == "merit":
            sigma = self.radius(values, d)
            centres = (incumbent, np.asarray(first, dtype=np.float64))
            return snap(np.vstack([perturb(c, sigma, self.n_local, rng) for c in centres]))
        sigma = adapted_radius(values, d, q)
        p = perturbation_probability(len(values), d, self.dycors_horizon_per_dim * d)
        return snap(subspace_perturb(incumbent, sigma, self.dycors_per_dim * d, p, rng))

    def fantasy_value(self, predicted: float, values: np.ndarray) -> float:
        """A chosen slot's value in the refit for the next (``"liar"`` and ``"believer"``).

        The believer's prediction leaves the spline as it was, so the next
        argmax is slot 1's neighbour; ``"liar"`` lowers it by ``BATCH_LIE``
        of the told range, as a measurement a little worse than predicted
        would, so the next slot is where the search would go after such a
        result: the refitted spline's argmax, not a perturbation.
        """
        if self.batch_fill != "liar":
            return predicted
        return predicted - BATCH_LIE * float(np.ptp(values))

    def near_argmax(
        self,
        spline: PolyharmonicSpline,
        rng: np.random.Generator,
        snap: Snap,
        neighbours: Neighbours | None = None,
        admissible: Mask | None = None,
    ) -> np.ndarray:
        """Legal points of the search for max s: its legal maxima, then its ``n_argmax`` best
        (admissible) samples."""
        if self.n_argmax == 0:
            return np.empty((0, spline.d))
        x, fx, legal = spline_maxima(spline, snap, neighbours, rng, 1024, admissible)
        return np.vstack(
            [legal, snap(x[best_admissible_samples(x, fx, admissible, self.n_argmax)])]
        )

    def radius(self, values: np.ndarray, d: int) -> float:
        """Perturbation radius: halved per ``max(4, d)`` non-improving points at the end."""
        stall = stalled_steps(values)
        return max(self.sigma_min, self.sigma_init * 0.5 ** (stall // max(4, d)))


def stalled_steps(values: np.ndarray, rtol: float = 1e-3) -> int:
    """Points told since the running maximum last rose by more than ``rtol`` of the range.

    Parameters
    ----------
    values : ndarray, shape (N,)
        Values in the order they were told (higher is better).
    rtol : float
        Improvements below ``rtol * (max - min)`` do not count.

    Returns
    -------
    int
        0 when the last value improved the best one.
    """
    tol = rtol * float(np.ptp(values)) if len(values) else 0.0
    best, last = -np.inf, 0
    for i, v in enumerate(values):
        if v > best + tol:
            best, last = v, i
    return len(values) - 1 - last


def perturb(center: np.ndarray, sigma: float, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` Gaussian perturbations of ``center`` in [0, 1]^d (reflected at the faces).

    Every coordinate moves when d <= 20; beyond, each with probability 20/d and at
    least one per point (DYCORS: perturbing few coordinates is what scales to
    high d).
    """
    return subspace_perturb(center, sigma, m, min(1.0, 20.0 / center.shape[0]), rng)


def fresh_candidates(candidates: np.ndarray, existing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct candidates not on an existing point, with their distance to the nearest one.

    A k-d tree of the existing points: O(M log N) instead of the M x N distance matrix.
    """
    legal = np.unique(candidates, axis=0)
    distance, _ = cKDTree(existing).query(legal, k=1)
    fresh = distance > 0.0
    return legal[fresh], distance[fresh]


def _by_score(points: np.ndarray, scores: np.ndarray) -> Ranking:
    order = np.argsort(-scores, kind="stable")
    return Ranking(points[order], scores[order])


def unit_scale(v: np.ndarray) -> np.ndarray:
    """``v`` mapped affinely onto [0, 1] (all ones when constant): merits mix unlike units."""
    span = float(np.ptp(v)) if v.size else 0.0
    return (v - v.min()) / span if span > 0 else np.ones_like(v)


def merit(values: np.ndarray, distance: np.ndarray, weight: float) -> np.ndarray:
    """The stochastic-RBF merit ``w * S + (1 - w) * D`` with S and D each scaled to [0, 1].

    Regis & Shoemaker (INFORMS J. Computing 19(4), 2007): high predicted
    value and far from every known point are both wanted; the weight trades
    exploitation against exploration.
    """
    return weight * unit_scale(values) + (1.0 - weight) * unit_scale(distance)


def known_points(points: np.ndarray, avoid: np.ndarray) -> np.ndarray:
    """The measured ``points`` and the ``avoid`` rows (pending, chosen) in one (M, d) array."""
    d = points.shape[1]
    return np.vstack([points, np.asarray(avoid, dtype=np.float64).reshape(-1, d)])


#: Strategies by name: "paper" is Algorithm 1 as published, "default" the one above.
STRATEGIES: dict[str, type[Strategy]] = {"paper": PaperStrategy, "default": DefaultStrategy}
