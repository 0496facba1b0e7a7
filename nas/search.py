"""Maximising the spline and turning its argmax into distinct, legal proposals.

:func:`maximize` is the hierarchical quasi-Monte-Carlo search of DESIGN
section 1. :func:`propose` walks ranked candidates per category and applies
the hard rules every strategy shares: snapped to legal values, never an
existing key, a minimum unit-box distance to every existing point, the
feasibility predicate, and the "believer" rule for batches. What the
candidates are and how they are ranked is a :class:`Strategy`; ``"paper"``
is Algorithm 1 (pure argmax of s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nas.space import Params, SearchSpace, Value
from nas.spline import PolyharmonicSpline

DEFAULT_SAMPLES = 4096
DEFAULT_LEVELS = 30
DEFAULT_BUDGET = 2**17

#: Candidates checked per vectorised distance computation in a walk.
_BLOCK = 1024

Objective = Callable[[np.ndarray], np.ndarray]
Snap = Callable[[np.ndarray], np.ndarray]


class SearchError(RuntimeError):
    """No feasible candidate at a distinct, legal point exists."""


def sample(
    f: Objective,
    d: int,
    *,
    seed: int | np.random.Generator,
    extra_points: np.ndarray | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    shrink: float = 0.5,
    max_levels: int = DEFAULT_LEVELS,
    budget: int = DEFAULT_BUDGET,
) -> tuple[np.ndarray, np.ndarray]:
    """Every point the hierarchical search evaluates, with its value.

    Level 0 is ``n_samples`` scrambled Halton points over [0, 1]^d plus
    ``extra_points``; level k samples the box of width ``shrink**k`` centred
    on the incumbent, clipped to [0, 1]^d. The search stops after two
    consecutive levels without improvement beyond floating-point accuracy
    (one miss can be sampling luck in a box still much wider than the
    distance to the optimum), after ``max_levels`` levels, or when the next
    level would exceed ``budget`` evaluations.

    Returns
    -------
    points : (M, d) ndarray
    values : (M,) ndarray
        ``f(points)``; the argmax is the search result.
    """
    _check_search_args(d, n_samples, shrink, max_levels, budget)
    from scipy.stats import qmc  # deferred: scipy.stats costs a login node ~1 s to import

    engine = qmc.Halton(d, scramble=True, seed=seed)
    first = engine.random(n_samples)
    if extra_points is not None and len(extra_points):
        first = np.vstack([np.asarray(extra_points, dtype=np.float64).reshape(-1, d), first])
    chunks_x, chunks_f = [first], [np.asarray(f(first), dtype=np.float64)]
    best = int(np.argmax(chunks_f[0]))
    x_best, f_best = first[best], chunks_f[0][best]
    used = first.shape[0]
    misses = 0
    for level in range(1, max_levels + 1):
        if used + n_samples > budget:
            break
        half = 0.5 * shrink**level
        lo = np.clip(x_best - half, 0.0, 1.0)
        hi = np.clip(x_best + half, 0.0, 1.0)
        x = lo + engine.random(n_samples) * (hi - lo)
        fx = np.asarray(f(x), dtype=np.float64)
        used += n_samples
        chunks_x.append(x)
        chunks_f.append(fx)
        i = int(np.argmax(fx))
        if fx[i] > f_best + 4.0 * np.spacing(abs(f_best)):
            x_best, f_best, misses = x[i], fx[i], 0
        else:
            misses += 1
            if misses == 2:
                break
    return np.vstack(chunks_x), np.concatenate(chunks_f)


def maximize(
    f: Objective,
    d: int,
    *,
    seed: int | np.random.Generator,
    extra_points: np.ndarray | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    shrink: float = 0.5,
    max_levels: int = DEFAULT_LEVELS,
    budget: int = DEFAULT_BUDGET,
) -> tuple[np.ndarray, float]:
    """Maximise a vectorised ``f: (M, d) -> (M,)`` over [0, 1]^d; see :func:`sample`.

    Returns
    -------
    x_best : (d,) ndarray
    f_best : float
    """
    x, fx = sample(
        f,
        d,
        seed=seed,
        extra_points=extra_points,
        n_samples=n_samples,
        shrink=shrink,
        max_levels=max_levels,
        budget=budget,
    )
    i = int(np.argmax(fx))
    return x[i].copy(), float(fx[i])


def _check_search_args(d: int, n_samples: int, shrink: float, max_levels: int, budget: int) -> None:
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"shrink must be in (0, 1), got {shrink}")
    if max_levels < 0:
        raise ValueError(f"max_levels must be >= 0, got {max_levels}")
    if budget < n_samples:
        raise ValueError(f"budget = {budget} must be at least n_samples = {n_samples}")


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
    ones. Scores must be comparable across categories (higher is better).
    """

    def rank(
        self, spline: PolyharmonicSpline, *, snap: Snap, avoid: np.ndarray, rng: np.random.Generator
    ) -> Ranking: ...


class PaperStrategy:
    """Algorithm 1: the snapped argmax of s first, then every other sampled point by s."""

    def rank(
        self, spline: PolyharmonicSpline, *, snap: Snap, avoid: np.ndarray, rng: np.random.Generator
    ) -> Ranking:
        x, fx = sample(spline, spline.d, seed=rng, extra_points=spline.points)
        order = np.argsort(-fx, kind="stable")
        legal = snap(x[order])
        unique, first_seen = np.unique(legal, axis=0, return_index=True)
        scores = spline(unique)
        head = int(np.argmin(first_seen))
        rest = np.delete(np.arange(len(unique)), head)
        rest = rest[np.argsort(-scores[rest], kind="stable")]
        ranked = np.concatenate(([head], rest))
        return Ranking(unique[ranked], scores[ranked])


@dataclass(frozen=True)
class Candidate:
    """One proposal: legal parameters, the base spline's prediction and the strategy's score."""

    params: Params
    category: tuple[Value, ...]
    predicted: float
    score: float


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
            cells = np.floor(ranking.points / cell)
            _, first = np.unique(cells, axis=0, return_index=True)
            keep = np.sort(first)
            ranking = Ranking(ranking.points[keep], ranking.scores[keep])
        self.ranking = ranking
        self.position = 0


def propose(
    space: SearchSpace,
    splines: Mapping[tuple[Value, ...], PolyharmonicSpline],
    *,
    q: int = 1,
    avoid: Sequence[Params] = (),
    feasible: Callable[[Params], bool] | None = None,
    min_distance: float = 1e-3,
    strategy: Strategy | None = None,
    seed: int = 0,
) -> list[Candidate]:
    """``q`` distinct, legal, feasible proposals across all category splines.

    A candidate is admissible when its key is not among the measured
    points (the spline supports) or ``avoid``, its unit-box distance to every
    such point and every earlier proposal of its category is at least
    ``min_distance``, and ``feasible`` accepts it. The best admissible head
    over all categories wins. Batches follow the believer rule: the winner
    joins its spline as a fantasy point (x, s(x)), that spline is refitted
    and its category re-ranked. ``predicted`` is always the value of the
    spline fitted to measured points only.

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
    current = dict(splines)
    blocked: dict[tuple[Value, ...], list[np.ndarray]] = {cat: [] for cat in categories}
    taken = set()
    for cat, spline in splines.items():
        for x in spline.points:
            taken.add(space.key(space.from_unit(x, cat)))
        blocked[cat].extend(spline.points)
    for params in avoid:
        taken.add(space.key(params))
        cat = space.category_of(params)
        if cat in blocked:
            blocked[cat].append(space.to_unit(params))
    checker = _Admissibility(space, taken, blocked, feasible, min_distance)

    def ranking_for(index: int, slot: int) -> _Walk:
        cat = categories[index]
        rng = np.random.default_rng([seed, index, slot])
        ranking = strategy.rank(
            current[cat], snap=space.snap_unit, avoid=checker.unit_points(cat), rng=rng
        )
        return _Walk(ranking, min_distance / np.sqrt(space.d))

    walks = {cat: ranking_for(i, 0) for i, cat in enumerate(categories)}
    out: list[Candidate] = []
    for slot in range(q):
        heads = {cat: checker.advance(walk, cat) for cat, walk in walks.items()}
        live = [cat for cat in categories if heads[cat] is not None]
        if not live:
            raise SearchError(
                f"no feasible candidate at a distinct legal point for proposal {slot + 1} of {q}: "
                f"{checker.summary()}"
            )
        cat = max(live, key=lambda c: walks[c].ranking.scores[heads[c]])
        walk = walks[cat]
        x = walk.ranking.points[heads[cat]]
        params = space.from_unit(x, cat)
        out.append(
            Candidate(params, cat, float(base[cat](x)), float(walk.ranking.scores[heads[cat]]))
        )
        checker.accept(params, x, cat)
        if slot + 1 < q:
            fantasy = current[cat]
            current[cat] = PolyharmonicSpline(
                np.vstack([fantasy.points, x]),
                np.append(fantasy.values, fantasy(x)),
                fantasy.smoothing,
            )
            walks[cat] = ranking_for(categories.index(cat), slot + 1)
    return out


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
        """Index of the first admissible candidate at or after the cursor (None if none)."""
        existing = self.unit_points(cat)
        points = walk.ranking.points
        while walk.position < len(points):
            block = points[walk.position : walk.position + _BLOCK]
            far = self._far_enough(block, existing)
            for offset in range(len(block)):
                if not far[offset]:
                    self.rejected["too close"] += 1
                else:
                    reason = self._reason(block[offset], cat)
                    if reason is None:
                        walk.position += offset
                        return walk.position
                    self.rejected[reason] += 1
                self.examined += 1
            walk.position += len(block)
        return None

    def _far_enough(self, block: np.ndarray, existing: np.ndarray) -> np.ndarray:
        if not existing.size:
            return np.ones(len(block), dtype=bool)
        diff = block[:, None, :] - existing[None, :, :]
        nearest = np.sqrt(np.min(np.einsum("ijk,ijk->ij", diff, diff), axis=1))
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
