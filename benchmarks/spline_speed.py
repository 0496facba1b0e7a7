"""Speed and accuracy of PolyharmonicSpline against scipy's RBFInterpolator, and propose time.

Run ``python benchmarks/spline_speed.py [--quick]``; prints markdown tables.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy.interpolate import RBFInterpolator

from nas.search.propose import propose
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import DefaultStrategy


def _data(d: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    return x, np.sin(3.0 * x).sum(axis=1) + x[:, 0] ** 2


def _seconds(call: Callable[[], object], repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return float(best)


def accuracy_and_speed(dims: list[int], sizes: list[int], n_eval: int) -> None:
    print(f"\n## Fit and evaluation on {n_eval:.0e} points, ours vs scipy\n")
    print(
        "| d | N | max rel. diff (1e5 pts) | fit ours [ms] | fit scipy [ms] | "
        "eval ours [Mpt/s] | eval scipy [Mpt/s] | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for d in dims:
        z = np.random.default_rng(1).random((n_eval, d))
        for n in sizes:
            x, y = _data(d, n)
            ours = PolyharmonicSpline(x, y)
            ref = RBFInterpolator(x, y, kernel="cubic", degree=1)
            check = z[:100_000]
            ref_values = ref(check)
            rel = np.max(np.abs(ours(check) - ref_values)) / np.max(np.abs(ref_values))
            fit_ours = _seconds(lambda: PolyharmonicSpline(x, y))  # noqa: B023
            fit_ref = _seconds(lambda: RBFInterpolator(x, y, kernel="cubic", degree=1))  # noqa: B023
            ev_ours = _seconds(lambda: ours(z), repeat=2)  # noqa: B023
            ev_ref = _seconds(lambda: ref(z), repeat=1)  # noqa: B023
            print(
                f"| {d} | {n} | {rel:.1e} | {1e3 * fit_ours:.2f} | {1e3 * fit_ref:.2f} | "
                f"{n_eval / ev_ours / 1e6:.1f} | {n_eval / ev_ref / 1e6:.1f} | {ev_ref / ev_ours:.1f}x |"
            )


def propose_time(cases: list[tuple[int, int]], q: int) -> None:
    print(f"\n## propose() wall time (paper strategy, q = 1 and q = {q}; default strategy q = 1)\n")
    print(f"| d | N | q=1 [s] | q={q} [s] | default q=1 [s] |")
    print("|---|---|---|---|---|")
    for d, n in cases:
        space = SearchSpace([Dim(f"x{k}", "float", 0.0, 1.0) for k in range(d)])
        x, y = _data(d, n)
        splines = {(): PolyharmonicSpline(x, y)}
        one = _seconds(lambda: propose(space, splines, q=1), repeat=2)  # noqa: B023
        many = _seconds(lambda: propose(space, splines, q=q), repeat=1)  # noqa: B023
        default = _seconds(
            lambda: propose(space, splines, strategy=DefaultStrategy()),  # noqa: B023
            repeat=2,
        )
        print(f"| {d} | {n} | {one:.2f} | {many:.2f} | {default:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sweep (d=2,8; N=10,40; 1e5 points)"
    )
    args = parser.parse_args()
    if args.quick:
        accuracy_and_speed([2, 8], [10, 40], 100_000)
        propose_time([(2, 10), (8, 40)], q=4)
    else:
        accuracy_and_speed([2, 4, 8, 12], [10, 40, 100, 500], 1_000_000)
        propose_time([(2, 10), (4, 20), (8, 40), (8, 100), (12, 60), (12, 200)], q=4)


if __name__ == "__main__":
    main()
