"""Does the proposal find the spline's best legal point when the spline has several basins?

Each seed draws an integer box (d = 3..8, random bounds), 40-60 distinct
random lattice points and values from a sum of four Gaussian bumps (several
basins), fits the spline and proposes one point (``paper`` strategy, q = 1).
Its prediction is compared with the dense reference of
:mod:`benchmarks.argmax_gap` (2^20 Sobol points snapped to legal values, the
32 best separated ones polished and climbed). The miss is
``(reference - predicted) / (max y - min y)``; the target is no miss above
1e-3 over 100 seeds.

Run ``python benchmarks/argmax_basins.py [--seeds 100] [--reference-points 1048576]``; prints a markdown
table: the worst and median miss, seeds above 1e-3, and the time of one
``propose`` (median and worst).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.argmax_gap import MIN_DISTANCE, reference
from nas.search.propose import propose
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import PaperStrategy

TARGET = 1e-3


def random_case(seed: int) -> tuple[SearchSpace, PolyharmonicSpline]:
    """A random integer box and a spline through 40-60 of its points with several basins."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(3, 9))
    lows = rng.integers(1, 9, d)
    highs = lows + rng.integers(4, 41, d)
    space = SearchSpace(
        [
            Dim(f"v{k}", "int", int(lo), int(hi))
            for k, (lo, hi) in enumerate(zip(lows, highs, strict=True))
        ]
    )
    n = int(rng.integers(40, 61))
    params, seen = [], set()
    while len(params) < n:
        p = space.from_unit(rng.random(d))
        if space.key(p) not in seen:
            seen.add(space.key(p))
            params.append(p)
    x = space.to_unit_many(params)
    centres, widths = rng.random((4, d)), rng.uniform(0.15, 0.4, 4)
    heights = rng.uniform(2.0, 10.0, 4)
    dist2 = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    y = 80.0 + (heights * np.exp(-dist2 / (2.0 * widths**2))).sum(axis=1)
    return space, PolyharmonicSpline(x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument(
        "--reference-points", type=int, default=2**20, help="Sobol points of the reference"
    )
    args = parser.parse_args()
    misses, seconds = [], []
    for seed in range(args.seeds):
        space, spline = random_case(seed)
        ref = reference(space, spline, args.reference_points)
        start = time.perf_counter()
        (cand,) = propose(
            space, {(): spline}, strategy=PaperStrategy(), seed=seed, min_distance=MIN_DISTANCE
        )
        seconds.append(time.perf_counter() - start)
        misses.append((ref - cand.predicted) / float(np.ptp(spline.values)))
        if misses[-1] > TARGET:
            print(f"seed {seed}: d = {space.d}, miss {misses[-1]:.2e}", flush=True)
    m = np.array(misses)
    print(
        f"\n## Proposal vs dense reference ({args.reference_points} Sobol points) on random "
        f"multi-basin splines, {args.seeds} seeds\n"
    )
    print(
        "| worst miss | median miss | seeds above 1e-3 | propose median [s] | propose worst [s] |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {m.max():.1e} | {np.median(m):.1e} | {int((m > TARGET).sum())} | "
        f"{np.median(seconds):.2f} | {max(seconds):.2f} |"
    )


if __name__ == "__main__":
    main()
