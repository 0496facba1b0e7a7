"""Filling slots 2..q of a batch with spread-out candidates instead of believed ones.

Algorithm 1 fills a batch by the *believer* rule: the winner's prediction is
treated as measured and the spline re-maximised. On a smooth surrogate the
next argmax then sits next to the first one, so a batch of four spends three
trainings where one would have told almost as much (10-18 extra evaluations
to 0.1 % regret at q = 4 on NAS-shaped problems).

The diverse fill is pySOT's batch mode (Regis & Shoemaker, INFORMS J.
Computing 19(4), 2007; Eng. Optim. 45(5), 2013): one candidate pool per
category (the strategy's ``batch_candidates``: for the default, perturbations
of the best measured point by DYCORS's rules with ``batch_fill = "dycors"``
or ``"thompson"`` (:mod:`nas.search.dycors`), or of every coordinate of the
best point and of the slot-1 proposal with ``"merit"``), from which each
slot takes the best admissible point by the stochastic-RBF merit

    w * S(x) + (1 - w) * D(x),

S the spline's value and D the distance to the nearest measured, pending or
already chosen point, both scaled to [0, 1] over the pools of all categories.
After each pick D shrinks around it, and w cycles through the strategy's
``batch_weights``, so later slots trade predicted value for spread. The
admissibility rules stay those of :func:`nas.search.propose.propose`, which
walks these rankings exactly as it walks the strategy's own; that ranking
follows the pool's, so a pool with nothing admissible cannot end a batch
early. A pool of the ranked candidates themselves (uniform points included)
explored too far: their low values stretch the scale of S until distance
dominates (``benchmarks/results/batch_fill.md``).

``batch_fill = "thompson"``, the default strategy's fill, keeps the DYCORS
pool and replaces the merit by Thompson sampling (:class:`ThompsonPool`):
each slot takes the best candidate of its own draw from the spline's
posterior (:mod:`nas.search.posterior`). Over forty seeds of eight problems
it stayed within 1.2x of single proposals' evaluations to 1 % regret on
more problems per twenty seeds than the merit (one miss in each set of
twenty against four and three) and stopped more runs within the budget;
pooled the two are level (``benchmarks/results/batch_fill.md``, "Thompson
is the default fill").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.spatial.distance import cdist

from nas.search.posterior import Framed, PosteriorSampler
from nas.search.space import Value
from nas.search.strategies import Ranking, merit, unit_scale

Category = tuple[Value, ...]


class CandidatePool:
    """Candidates per category with their spline values, ranked afresh for each slot.

    Subclasses say how a slot scores the candidates (:meth:`scores`) and
    what a chosen point changes (:meth:`take`).

    Parameters
    ----------
    points : mapping of category to ndarray, shape (M, d)
        Legal unit-box candidates of each category.
    values : mapping of category to ndarray, shape (M,)
        The spline's value at each candidate (higher is better).
    fallback : mapping of category to Ranking, optional
        Ranked after the pool, in their own order, should every pool point be
        inadmissible (perturbations of a small radius on a coarse grid can all
        snap onto taken points).
    """

    def __init__(
        self,
        points: Mapping[Category, np.ndarray],
        values: Mapping[Category, np.ndarray],
        fallback: Mapping[Category, Ranking] | None = None,
    ) -> None:
        self.points = {cat: np.asarray(p, dtype=np.float64) for cat, p in points.items()}
        self.values = {cat: np.asarray(values[cat], dtype=np.float64) for cat in self.points}
        self.fallback = dict(fallback or {})

    def take(self, x: np.ndarray, cat: Category) -> None:
        """Account for a chosen point (the hard rules of ``propose`` refuse it again anyway)."""

    def scores(self, slot: int) -> np.ndarray:
        """Every category's candidates scored for ``slot``, in order, in [0, 1]."""
        raise NotImplementedError

    def rankings(self, slot: int) -> dict[Category, Ranking]:
        """Each category's candidates best first by :meth:`scores` of ``slot`` (0-based, >= 1)."""
        cats = list(self.points)
        scores = self.scores(slot)
        out, start = {}, 0
        for cat in cats:
            stop = start + len(self.points[cat])
            order = np.argsort(-scores[start:stop], kind="stable")
            out[cat] = Ranking(self.points[cat][order], scores[start:stop][order])
            start = stop
        return self._with_fallback(out)

    def _with_fallback(self, pool: dict[Category, Ranking]) -> dict[Category, Ranking]:
        """Pool rankings (scores in [0, 1]) followed by the fallback ones (in [-2, -1])."""
        if not self.fallback:
            return pool
        scaled = unit_scale(np.concatenate([r.scores for r in self.fallback.values()])) - 2.0
        out, start = {}, 0
        for cat, tail in self.fallback.items():
            stop = start + len(tail.scores)
            head = pool.get(cat, Ranking(np.empty((0, tail.points.shape[1])), np.empty(0)))
            out[cat] = Ranking(
                np.vstack([head.points, tail.points]),
                np.concatenate([head.scores, scaled[start:stop]]),
            )
            start = stop
        return out


class DiversePool(CandidatePool):
    """A pool ranked by the merit of spline value and distance to what is taken.

    ``existing`` (mapping of category to ndarray, shape (N, d)): measured,
    pending and already proposed unit points of each category; ``weights``:
    merit weights on the spline value for slots 2, 3, ... (cycled); the other
    parameters are :class:`CandidatePool`'s.
    """

    def __init__(
        self,
        points: Mapping[Category, np.ndarray],
        values: Mapping[Category, np.ndarray],
        existing: Mapping[Category, np.ndarray],
        weights: Sequence[float],
        fallback: Mapping[Category, Ranking] | None = None,
    ) -> None:
        if not weights:
            raise ValueError("weights must not be empty")
        super().__init__(points, values, fallback)
        self.distance = {
            cat: _nearest(p, np.asarray(existing[cat], dtype=np.float64))
            for cat, p in self.points.items()
        }
        self.weights = tuple(weights)

    def take(self, x: np.ndarray, cat: Category) -> None:
        """Account for a chosen point: distances in its category shrink around it."""
        if cat in self.points:
            self.distance[cat] = np.minimum(self.distance[cat], _nearest(self.points[cat], x))

    def scores(self, slot: int) -> np.ndarray:
        """The merit of ``slot``'s weight, over the pools of all categories in order."""
        cats = list(self.points)
        return merit(
            np.concatenate([self.values[c] for c in cats]),
            np.concatenate([self.distance[c] for c in cats]),
            self.weights[(slot - 1) % len(self.weights)],
        )


class ThompsonPool(CandidatePool):
    """A pool whose slots each take the best candidate of their own draw from the posterior.

    The merit fill trades value for distance by fixed weights, and the
    distance term pushes later slots apart whatever the spline knows. A
    draw from the spline's posterior (:mod:`nas.search.posterior`) is high
    where the spline predicts well *or* is unsure, in proportion to how
    unsure it is: each slot is one plausible truth's best candidate, so the
    slots spread where the spline cannot tell candidates apart and crowd
    where it can. Taken points need no distance term: the hard rules of
    :func:`nas.search.propose.propose` refuse them, and the next draw is
    independent. Draws are seeded by ``seed`` and the slot, so a batch is
    reproducible.

    ``splines`` (per category) are the fits the posterior is read from;
    ``spread`` multiplies its standard deviation; the other parameters are
    :class:`CandidatePool`'s.
    """

    def __init__(
        self,
        splines: Mapping[Category, Framed],
        spread: float,
        seed: int,
        points: Mapping[Category, np.ndarray],
        values: Mapping[Category, np.ndarray],
        fallback: Mapping[Category, Ranking] | None = None,
    ) -> None:
        distinct = {
            cat: np.unique(np.asarray(p), axis=0, return_index=True)[1] for cat, p in points.items()
        }
        points = {cat: np.asarray(p)[distinct[cat]] for cat, p in points.items()}
        values = {cat: np.asarray(values[cat])[distinct[cat]] for cat in points}
        super().__init__(points, values, fallback)
        self.samplers = {
            cat: PosteriorSampler(splines[cat], p, spread) for cat, p in self.points.items()
        }
        self.seed = seed

    def scores(self, slot: int) -> np.ndarray:
        """One draw per category at its candidates, scaled to [0, 1] over all of them.

        The categories of a shared spline are drawn apart (their
        correlation is ignored): a slot compares their best candidates,
        whose draws are each right for their own category.
        """
        draws = [
            sampler.draw(np.random.default_rng([self.seed, slot, index]))
            for index, sampler in enumerate(self.samplers.values())
        ]
        return unit_scale(np.concatenate(draws)) if draws else np.empty(0)


def _nearest(points: np.ndarray, existing: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest existing one; the unit box's diameter when none."""
    d = points.shape[1]
    existing = existing.reshape(-1, d)
    if not len(existing) or not len(points):
        return np.full(len(points), np.sqrt(d))
    return cdist(points, existing).min(axis=1)
