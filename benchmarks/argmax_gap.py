"""How far the proposal's prediction falls short of the spline's best legal value.

For each case a spline is fitted to fixed data; ``propose`` (Algorithm 1, the
``paper`` strategy, q = 1) proposes one point per seed, and its prediction is
compared with a dense reference search of the same spline: 2^20 Sobol points
snapped to legal values, the 32 best (separated) polished by L-BFGS-B and
climbed through their integer neighbourhood. Points closer than
``min_distance`` to the data are excluded from the reference, as they are
from proposals. The gap is ``(reference - predicted) / (max y - min y)``.
The reference is self-contained (it needs only a spline and a space), so the
same script measures older versions of the search.

Run ``python benchmarks/argmax_gap.py [--seeds 10]``; prints a markdown table
with the worst and median gap per case and the time of one ``propose``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

from benchmarks.problems import nas8
from nas.search.propose import propose
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import PaperStrategy

MIN_DISTANCE = 1e-3


def _float_case(d: int, target: np.ndarray, n: int) -> tuple[SearchSpace, PolyharmonicSpline]:
    """A smooth bowl with its top at ``target`` (coordinates beyond [0, 1] put it on a face)."""
    space = SearchSpace([Dim(f"x{k}", "float", 0.0, 1.0) for k in range(d)])
    x = qmc.Halton(d, seed=7).random(n)
    weights = np.linspace(1.0, 2.0, d)
    y = 80.0 - 10.0 * ((x - target) ** 2 * weights).sum(axis=1) + 2.0 * x[:, 0] * x[:, 1]
    return space, PolyharmonicSpline(x, y)


def corner() -> tuple[SearchSpace, PolyharmonicSpline]:
    """d = 6, the top beyond the box in 4 coordinates: the maximum sits on 4 bounds."""
    return _float_case(6, np.array([1.3, 1.2, -0.2, 1.4, 0.4, 0.6]), 40)


def interior() -> tuple[SearchSpace, PolyharmonicSpline]:
    """d = 6, the top inside the box."""
    return _float_case(6, np.array([0.3, 0.7, 0.55, 0.2, 0.8, 0.45]), 40)


def nas8_case() -> tuple[SearchSpace, PolyharmonicSpline]:
    """The 8-dim integer ``nas8`` problem (accuracy in %): its 2d+3 design and 21 random points."""
    problem = nas8()
    space = SearchSpace(
        [
            Dim(f"v{k}", "int", lo, hi)
            for k, (lo, hi) in enumerate(zip(problem.lows, problem.highs, strict=True))
        ]
    )
    rng = np.random.default_rng(3)
    params = space.initial_design()
    params += [space.from_unit(u) for u in rng.random((21, space.d))]
    values = np.array([[p[n] for n in space.names] for p in params], dtype=float)
    y = 100.0 * (1.0 - problem.loss(values))
    return space, PolyharmonicSpline(space.to_unit_many(params), y)


CASES: dict[str, Callable[[], tuple[SearchSpace, PolyharmonicSpline]]] = {
    "corner (d=6, float)": corner,
    "interior (d=6, float)": interior,
    "nas8 (d=8, int)": nas8_case,
}


def _legal(space: SearchSpace, x: np.ndarray) -> np.ndarray:
    return space.to_unit_many([space.from_unit(row) for row in x])


def _climb(space: SearchSpace, spline: PolyharmonicSpline, x: np.ndarray) -> np.ndarray:
    """Coordinate steps of one grid unit on the integer dims while the spline improves."""
    ints = [k for k, dim in enumerate(space.numeric) if dim.type == "int"]
    best = _legal(space, x[None, :])[0]
    f_best = float(spline(best))
    while ints:
        params = space.from_unit(best)
        moves = []
        for k in ints:
            name = space.numeric[k].name
            for step in (-1, 1):
                moves.append({**params, name: params[name] + step})
        candidates = space.to_unit_many(moves)
        values = spline(candidates)
        i = int(np.argmax(values))
        if values[i] <= f_best + 1e-12:
            break
        best, f_best = candidates[i], float(values[i])
    return best


def reference(space: SearchSpace, spline: PolyharmonicSpline, n: int = 2**20) -> float:
    """Best value of the spline over legal points at least MIN_DISTANCE from the data."""
    x = qmc.Sobol(space.d, seed=123).random(n)
    legal = space.snap_unit(x)
    values = spline(legal)
    order = np.argsort(-values)
    starts: list[np.ndarray] = []
    for i in order:
        if all(np.linalg.norm(x[i] - s) > 0.05 for s in starts):
            starts.append(x[i])
        if len(starts) == 32:
            break
    jac = getattr(spline, "gradient", None)
    found = [legal]
    for x0 in starts:
        res = minimize(
            lambda z: -float(spline(z)),
            x0,
            jac=None if jac is None else (lambda z: -jac(z)),
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * space.d,
        )
        found.append(_climb(space, spline, np.clip(res.x, 0, 1))[None, :])
    candidates = np.vstack(found)
    dist = np.sqrt(((candidates[:, None, :] - spline.points[None, :, :]) ** 2).sum(-1)).min(1)
    return float(spline(candidates[dist >= MIN_DISTANCE]).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    print(f"\n## Proposal vs dense reference, paper strategy, {args.seeds} seeds\n")
    print("| case | reference | predicted (min..max) | gap worst | gap median | propose [s] |")
    print("|---|---|---|---|---|---|")
    for name, make in CASES.items():
        space, spline = make()
        ref = reference(space, spline)
        span = float(np.ptp(spline.values))
        predicted, seconds = [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            (cand,) = propose(
                space, {(): spline}, strategy=PaperStrategy(), seed=seed, min_distance=MIN_DISTANCE
            )
            seconds.append(time.perf_counter() - start)
            predicted.append(cand.predicted)
        gaps = (ref - np.array(predicted)) / span
        print(
            f"| {name} | {ref:.4f} | {min(predicted):.4f}..{max(predicted):.4f} | "
            f"{gaps.max():.1e} | {np.median(gaps):.1e} | {np.median(seconds):.2f} |"
        )


if __name__ == "__main__":
    main()
