"""Maximising the spline and turning its argmax into distinct, legal proposals.

:func:`maximize` is the hierarchical quasi-Monte-Carlo search of DESIGN
section 1. :func:`propose` walks ranked candidates per category and applies
the hard rules every strategy shares: snapped to legal values, never an
existing key, a minimum unit-box distance to every existing point and the
feasibility predicate. What the candidates are and how they are ranked is a
:class:`Strategy`; ``"paper"`` is Algorithm 1 (pure argmax of s). Batch
slots 2..q come from a merit-ranked pool (:mod:`nas.search.batch`) for
strategies that offer one, else by the believer rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from nas.errors import UserError
from nas.search.batch import CandidatePool, DiversePool, ThompsonPool
from nas.search.maximize import Mask
from nas.search.rows import first_of_each_row
from nas.search.settings import FANTASY_FILLS, SETTINGS
from nas.search.space import Params, SearchSpace, Value
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import (
    DiverseBatches,
    Fantasies,
    PaperStrategy,
    Ranking,
    Strategy,
)
from nas.search.threads import in_search_threads

#: Candidates checked per vectorised distance query in a walk.
_BLOCK = 1024

#: The minimum unit-box distance when a caller gives none: the setting's declared default.
_MIN_DISTANCE: float = SETTINGS["min_distance"].default


class SearchError(UserError, RuntimeError):
    """No feasible candidate at a distinct, legal point exists."""


@dataclass(frozen=True)
class Candidate:
    """One proposal: legal parameters, the base spline's prediction and the strategy's score.

    ``fill`` marks a diverse batch fill (slots 2..q of a
    :class:`~nas.search.strategies.DiverseBatches` strategy): chosen for its
    distance as much as its value, so its agreement with the spline says
    little about whether the search has converged.
    """

    params: Params
    category: tuple[Value, ...]
    predicted: float
    score: float
    fill: bool = False


class _Walk:
    """Per-category cursor over a ranking that skips inadmissible candidates lazily.

    With ``cell > 0`` the ranking is thinned first: of the candidates in one
    grid cell of that width only the best-ranked is kept. Cells are narrower
    than the minimum distance, so no two of the dropped near-duplicates
    (the refinement levels pile thousands around the argmax) could both be
    proposed anyway, and the walk stays short.
    """

    def __init__(self, ranking: Ranking, cell: float) -> None:
        if cell > 0 and len(ranking.points):
            keep = first_of_each_row(np.floor(ranking.points / cell))
            ranking = Ranking(ranking.points[keep], ranking.scores[keep])
        self.ranking = ranking
        self.position = 0


@in_search_threads
def propose(
    space: SearchSpace,
    splines: Mapping[tuple[Value, ...], PolyharmonicSpline],
    *,
    q: int = 1,
    avoid: Sequence[Params] = (),
    issued: Sequence[Params] = (),
    feasible: Callable[[Params], bool] | None = None,
    min_distance: float = _MIN_DISTANCE,
    strategy: Strategy | None = None,
    seed: int = 0,
    ranked_on: Mapping[tuple[Value, ...], PolyharmonicSpline] | None = None,
) -> list[Candidate]:
    """``q`` distinct, legal, feasible proposals across all category splines.

    A candidate is admissible when its key is not among the measured
    points (the spline supports), ``avoid`` or ``issued``, its unit-box
    distance to every such point and every earlier proposal of its
    category is at least ``min_distance``, and ``feasible`` accepts it. The
    best admissible head over all categories wins (by predicted value, or by
    a score that compares across categories: ``head_score`` below), and slot
    1 is the same with any ``q``. A :class:`~nas.search.strategies.DiverseBatches`
    strategy fills slots 2..q from one pool per category, each slot the
    best of its own draw from the posterior
    (:class:`~nas.search.batch.ThompsonPool`) or by value and distance to
    every taken point (:class:`~nas.search.batch.DiversePool`); the fantasy
    fills and any other strategy follow the believer rule: the winner joins
    its spline as a fantasy point (x, s(x), less a lie for ``"liar"``), that
    spline is refitted and its category re-ranked. ``predicted`` is always
    the value of the spline fitted to measured points only.

    ``ranked_on`` (same keys as ``splines``; default ``splines``): the splines
    the strategy ranks the heads (and believer slots) on, e.g. fitted to
    capped values (:func:`nas.search.optimizer.capped_values`); the diverse
    pool, ``predicted`` and the strategy's scale (``told`` of its ``rank``:
    the measured values, without the believer slots' fantasies) read
    ``splines``.

    ``issued`` are points proposed earlier and not measured yet (pending or
    training). The new proposals continue their batch: the issued points
    take its first slots, in order, and the new ones are its next slots,
    filled as above. The spline has not changed since the issued argmax
    was proposed, so its head would otherwise be that argmax's lattice
    neighbour: proposing again while earlier points train (``propose``
    twice, or ask/tell with several workers) would train near-copies.

    Raises
    ------
    SearchError
        When fewer than ``q`` admissible candidates exist; the message
        counts why candidates were rejected.
    """
    if q < 1:
        raise ValueError(f"q must be >= 1, got {q}")
    if not splines:
        raise SearchError("no fitted spline to propose from")
    strategy = strategy or PaperStrategy()
    categories = list(splines)
    base = dict(splines)
    current = dict(splines if ranked_on is None else ranked_on)
    blocked: dict[tuple[Value, ...], list[np.ndarray]] = {cat: [] for cat in categories}
    taken = set()
    for cat, spline in splines.items():
        for x in spline.points:
            taken.add(space.key(space.from_unit(x, cat)))
        blocked[cat].extend(spline.points)
    for params in [*avoid, *issued]:
        taken.add(space.key(params))
        cat = space.category_of(params)
        if cat in blocked:
            blocked[cat].append(space.to_unit(params))
    checker = _Admissibility(space, taken, blocked, feasible, min_distance)
    masks = {cat: feasible_mask(space, cat, feasible) for cat in categories}
    cell = min_distance / np.sqrt(space.d)
    slots = [(space.to_unit(p), space.category_of(p)) for p in issued]
    slots = [(x, cat) for x, cat in slots if cat in base]
    size = len(slots) + q

    def ranking_for(index: int, slot: int) -> _Walk:
        cat = categories[index]
        rng = np.random.default_rng([seed, index, slot])
        ranking = strategy.rank(
            current[cat],
            snap=space.snap_unit,
            avoid=checker.unit_points(cat),
            rng=rng,
            neighbours=space.lattice_neighbours,
            in_batch=size > 1 and slot == 0,
            admissible=masks[cat],
            told=None if ranked_on is None else base[cat].values,
        )
        return _Walk(ranking, cell)

    walks = {cat: ranking_for(i, 0) for i, cat in enumerate(categories)}
    pool: CandidatePool | None = None

    def take(slot: int, x: np.ndarray, cat: tuple[Value, ...]) -> None:
        """Slot ``slot`` holds ``x``: the rankings of the next slot see it."""
        nonlocal pool, walks
        if pool is None and _fills_diversely(strategy):
            pool = _diverse_pool(space, strategy, base, walks, checker, x, seed, size)
        if pool is not None:
            pool.take(x, cat)
            walks = {c: _Walk(r, cell) for c, r in pool.rankings(slot + 1).items()}
        else:  # the believer rule: the winner's fantasy value joins its spline as if measured
            fantasy = current[cat]
            current[cat] = fantasy.refit(
                np.vstack([fantasy.points, x]),
                np.append(fantasy.values, _fantasy_value(strategy, fantasy, x)),
            )
            walks[cat] = ranking_for(categories.index(cat), slot + 1)

    def head_score(cat: tuple[Value, ...], head: int) -> float:
        """What a category's head is compared with other categories' heads by.

        A pool's merit is scaled over all categories at once, and Algorithm
        1's scores are the spline's values: both compare as they are. Other
        strategies scale their scores within a category (a merit of value
        and distance, an exploitation step's values mapped to [0, 1]), so
        every category's head would score about 1; their heads compare by
        predicted value instead, as one shared spline would compare them.
        """
        ranking = walks[cat].ranking
        if pool is not None or getattr(strategy, "scores_are_values", False):
            return float(ranking.scores[head])
        return float(current[cat](ranking.points[head][None, :])[0])

    for slot, (x, cat) in enumerate(slots):
        take(slot, x, cat)
    out: list[Candidate] = []
    for slot in range(len(slots), size):
        heads = {cat: checker.advance(walk, cat) for cat, walk in walks.items()}
        live = [cat for cat in categories if heads[cat] is not None]
        if not live:
            raise SearchError(
                f"no feasible candidate at a distinct legal point for proposal {len(out) + 1} "
                f"of {q}: {checker.summary()}"
            )
        cat = live[0] if len(live) == 1 else max(live, key=lambda c: head_score(c, heads[c]))
        walk = walks[cat]
        x = walk.ranking.points[heads[cat]]
        params = space.from_unit(x, cat)
        score = float(walk.ranking.scores[heads[cat]])
        fill = slot > 0 and _fills_diversely(strategy)
        out.append(Candidate(params, cat, float(base[cat](x)), score, fill=fill))
        if slot + 1 == size:
            break
        checker.accept(params, x, cat)
        take(slot, x, cat)
    return out


def feasible_mask(
    space: SearchSpace,
    category: tuple[Value, ...],
    feasible: Callable[[Params], bool] | None,
) -> Mask | None:
    """The feasibility predicate as a mask of unit points of ``category`` (None: no predicate).

    Each point is judged at its legal snap, once: the maximisation asks
    about the same legal points again and again, and a user's rule or a
    cost model may be slow.
    """
    if feasible is None:
        return None
    memo: dict[bytes, bool] = {}

    def mask(x: np.ndarray) -> np.ndarray:
        legal = space.snap_unit(np.asarray(x, dtype=np.float64).reshape(-1, space.d))
        out = np.empty(len(legal), dtype=bool)
        for row, point in enumerate(legal):
            key = point.tobytes()
            if key not in memo:
                memo[key] = bool(feasible(space.from_unit(point, category)))
            out[row] = memo[key]
        return out

    return mask


def _fills_diversely(strategy: Strategy) -> bool:
    """Whether slots 2..q come from a merit-ranked pool (else the believer rule)."""
    return isinstance(strategy, DiverseBatches) and strategy.batch_fill not in FANTASY_FILLS


def _fantasy_value(strategy: Strategy, spline: PolyharmonicSpline, x: np.ndarray) -> float:
    """The value a chosen slot joins its spline with: its prediction, less the strategy's lie."""
    predicted = float(spline(x))
    if isinstance(strategy, Fantasies):
        return strategy.fantasy_value(predicted, spline.values)
    return predicted


def _diverse_pool(
    space: SearchSpace,
    strategy: DiverseBatches,
    base: Mapping[tuple[Value, ...], PolyharmonicSpline],
    walks: Mapping[tuple[Value, ...], _Walk],
    checker: _Admissibility,
    first: np.ndarray,
    seed: int,
    q: int,
) -> CandidatePool:
    """The strategy's batch candidates of each category, its slot-1 ranking as the fallback."""
    points, values = {}, {}
    for index, cat in enumerate(walks):
        rng = np.random.default_rng([seed, index, 0, 1])
        points[cat] = strategy.batch_candidates(
            base[cat], first, snap=space.snap_unit, rng=rng, q=q
        )
        values[cat] = base[cat](points[cat])
    fallback = {cat: walk.ranking for cat, walk in walks.items()}
    if strategy.batch_fill == "thompson":
        return ThompsonPool(base, strategy.thompson_spread, seed, points, values, fallback)
    existing = {cat: checker.unit_points(cat) for cat in walks}
    return DiversePool(points, values, existing, strategy.batch_weights, fallback)


class _Admissibility:
    """The hard rules shared by every strategy, with counts for the error message."""

    def __init__(
        self,
        space: SearchSpace,
        taken: set[tuple[Value, ...]],
        blocked: dict[tuple[Value, ...], list[np.ndarray]],
        feasible: Callable[[Params], bool] | None,
        min_distance: float,
    ) -> None:
        self.space = space
        self.taken = taken
        self.blocked = blocked
        self.feasible = feasible
        self.min_distance = min_distance
        self.rejected = {"taken": 0, "too close": 0, "infeasible": 0}
        self.infeasible: set[tuple[tuple[Value, ...], bytes]] = set()
        self.examined = 0

    def unit_points(self, cat: tuple[Value, ...]) -> np.ndarray:
        return np.array(self.blocked[cat]).reshape(-1, self.space.d)

    def advance(self, walk: _Walk, cat: tuple[Value, ...]) -> int | None:
        """Index of the first admissible candidate at or after the cursor (None if none).

        The distance rule is one k-d tree query per block of candidates; only
        candidates far enough from every point are checked one by one (key,
        feasibility predicate), and the walk stops at the first that passes.
        """
        existing = self.unit_points(cat)
        tree = cKDTree(existing) if len(existing) else None
        points = walk.ranking.points
        while walk.position < len(points):
            block = points[walk.position : walk.position + _BLOCK]
            far = self._far_enough(block, tree)
            for offset in np.flatnonzero(far):
                reason = self._reason(block[offset], cat)
                if reason is None:
                    self.rejected["too close"] += int(offset - np.count_nonzero(far[:offset]))
                    self.examined += int(offset)
                    walk.position += int(offset)
                    return walk.position
                self.rejected[reason] += 1
            self.rejected["too close"] += int(len(block) - np.count_nonzero(far))
            self.examined += len(block)
            walk.position += len(block)
        return None

    def _far_enough(self, block: np.ndarray, tree: cKDTree | None) -> np.ndarray:
        if tree is None:
            return np.ones(len(block), dtype=bool)
        nearest, _ = tree.query(block, k=1)
        return nearest >= self.min_distance

    def _reason(self, x: np.ndarray, cat: tuple[Value, ...]) -> str | None:
        memo = (cat, x.tobytes())
        if memo in self.infeasible:
            return "infeasible"
        params = self.space.from_unit(x, cat)
        if tuple(params[name] for name in self.space.names) in self.taken:
            return "taken"
        if self.feasible is not None and not self.feasible(params):
            self.infeasible.add(memo)
            return "infeasible"
        return None

    def accept(self, params: Params, x: np.ndarray, cat: tuple[Value, ...]) -> None:
        self.examined += 1
        self.taken.add(self.space.key(params))
        self.blocked[cat].append(np.asarray(x, dtype=np.float64))

    def summary(self) -> str:
        reasons = ", ".join(f"{count} {why}" for why, count in self.rejected.items())
        return f"examined {self.examined} candidates ({reasons}; min_distance={self.min_distance})"
