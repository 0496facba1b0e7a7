"""Acceptance table: the spline against scipy's RBFInterpolator, propose time, BLAS threads.

Run ``python benchmarks/spline_speed.py [--quick]``; prints markdown tables
(``--gradient``: only the gradient's time and memory; ``--batch``: only the
time of a batch of four by each fill).

Every time is CPU seconds of this one process (``time.process_time``) with
every BLAS library limited to the search's thread count
(:mod:`nas.search.threads`), ours and scipy's interleaved on the same data,
median of ``--repeat`` runs. Each table is measured twice: as the machine is
(its load average printed beside it) and under a background load this
script starts and stops itself (``--load`` busy processes). Ratios below 1
mean ours is faster.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from scipy.interpolate import RBFInterpolator
from threadpoolctl import threadpool_limits

from nas.search.propose import propose
from nas.search.space import Dim, SearchSpace
from nas.search.spline import PolyharmonicSpline
from nas.search.strategies import DefaultStrategy, PaperStrategy
from nas.search.threads import search_threads

BUSY = "import time\nend = time.time() + 900\nwhile time.time() < end: pass\n"


def _data(d: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    return x, np.sin(3.0 * x).sum(axis=1) + x[:, 0] ** 2


def _cpu(call: Callable[[], object]) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def _wall(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _load_line() -> str:
    return f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count() or 0} cores"


@contextmanager
def background_load(processes: int) -> Iterator[None]:
    """``processes`` busy Python loops for the duration of the block (killed after, by pid)."""
    started = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(processes)]
    try:
        time.sleep(1.0)
        yield
    finally:
        for process in started:
            process.kill()
            process.wait()


def fit_table(dims: list[int], sizes: list[int], repeat: int, n_eval: int) -> None:
    print(f"\n{_load_line()} (at start)\n")
    print(
        "| d | N | max rel. diff | fit ours [ms] | fit scipy [ms] | fit ratio | "
        "fit+LOO [ms] | fit+LOO / scipy fit | eval ours [ms] | eval scipy [ms] | eval ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for d in dims:
        z = np.random.default_rng(1).random((n_eval, d))
        for n in sizes:
            x, y = _data(d, n)
            reps = max(repeat, 200 // max(1, n // 10)) if n < 200 else repeat
            times: dict[str, list[float]] = {k: [] for k in ("ours", "loo", "ref", "ev", "evref")}
            ours = PolyharmonicSpline(x, y)
            ref = RBFInterpolator(x, y, kernel="cubic", degree=1)
            rel = float(np.max(np.abs(ours(z) - ref(z))) / np.max(np.abs(ref(z))))
            for _ in range(reps):  # interleaved, so a change of load hits both
                times["ours"].append(_cpu(lambda: PolyharmonicSpline(x, y)))  # noqa: B023
                times["loo"].append(_cpu(lambda: PolyharmonicSpline(x, y).loo_errors()))  # noqa: B023
                times["ref"].append(
                    _cpu(lambda: RBFInterpolator(x, y, kernel="cubic", degree=1))  # noqa: B023
                )
            for _ in range(repeat):
                times["ev"].append(_cpu(lambda: ours(z)))  # noqa: B023
                times["evref"].append(_cpu(lambda: ref(z)))  # noqa: B023
            m = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
            print(
                f"| {d} | {n} | {rel:.1e} | {m['ours']:.2f} | {m['ref']:.2f} | "
                f"{m['ours'] / m['ref']:.2f} | {m['loo']:.2f} | {m['loo'] / m['ref']:.2f} | "
                f"{m['ev']:.1f} | {m['evref']:.1f} | {m['ev'] / m['evref']:.2f} |"
            )
    print(f"\n{_load_line()} (at end); evaluation on {n_eval:,} points\n")


PEAK = """
import sys
import numpy as np
from scipy.interpolate import RBFInterpolator
from nas.search.spline import PolyharmonicSpline
what, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.random.default_rng(0).random((n, d)); y = np.sin(3 * x).sum(axis=1)
if what == "ours":
    PolyharmonicSpline(x, y).loo_errors()
elif what == "ours-fit":
    PolyharmonicSpline(x, y)
elif what == "scipy":
    RBFInterpolator(x, y, kernel="cubic", degree=1)
"""


def _peak_mib(what: str, n: int, d: int) -> float:
    """Peak RSS (MiB) of a fresh process doing ``what``, measured by GNU time.

    Not ``getrusage`` in a child of this process: Linux carries a parent's
    peak RSS into the children it forks.
    """
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-c", PEAK, what, str(n), str(d)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    return float(done.stderr.strip().splitlines()[-1]) / 1024


def memory_table(n: int, d: int) -> None:
    print(f"\n### Peak memory of one fit, N = {n}, d = {d} (peak RSS of a fresh process)\n")
    print("| what | peak RSS MiB | over imports and data MiB |\n|---|---|---|")
    base = _peak_mib("none", n, d)
    print(f"| imports and data only | {base:.1f} | 0 |")
    for what in ("ours-fit", "ours", "scipy"):
        peak = _peak_mib(what, n, d)
        label = {"ours-fit": "ours, fit", "ours": "ours, fit + LOO", "scipy": "scipy fit"}[what]
        print(f"| {label} | {peak:.1f} | {peak - base:.1f} |")


def gradient_table(sizes: list[int], d: int, m: int, repeat: int) -> None:
    """CPU time and peak traced memory of ``gradient`` on ``m`` points, beside the M x N x d
    temporary of the one-shot formula (what the gradient allocated before it was chunked)."""
    print(f"\n### Gradient at {m:,} points, d = {d} (median of {repeat}); {_load_line()}\n")
    print("| N | CPU [ms] | peak traced MiB | one-shot M x N x d MiB |\n|---|---|---|---|")
    z = np.random.default_rng(1).random((m, d))
    for n in sizes:
        spline = PolyharmonicSpline(*_data(d, n))
        spline.gradient(z[:10])
        cpu = float(np.median([_cpu(lambda: spline.gradient(z)) for _ in range(repeat)]))  # noqa: B023
        tracemalloc.start()
        try:
            spline.gradient(z)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        print(f"| {n} | {1e3 * cpu:.1f} | {peak:.2f} | {8 * m * n * d / 2**20:.0f} |")


def threads_table(sizes: list[int], d: int, repeat: int) -> None:
    print(f"\n### BLAS threads: fit + LOO, wall and CPU ms (median of {repeat}); {_load_line()}\n")
    print("| N | threads | wall [ms] | CPU [ms] |\n|---|---|---|---|")
    for n in sizes:
        x, y = _data(d, n)
        for threads in (1, 2, None):
            with threadpool_limits(limits=threads, user_api="blas"):
                walls, cpus = [], []
                for _ in range(repeat):
                    cpu = time.process_time()
                    walls.append(_wall(lambda: PolyharmonicSpline(x, y).loo_errors()))  # noqa: B023
                    cpus.append(time.process_time() - cpu)
            label = "default" if threads is None else str(threads)
            print(f"| {n} | {label} | {1e3 * np.median(walls):.1f} | {1e3 * np.median(cpus):.1f} |")


def propose_table(dims: list[int], sizes: list[int], repeat: int) -> None:
    print(f"\n### propose() CPU seconds, q = 1 (median of {repeat}); {_load_line()}\n")
    print("| d | N | paper [s] | default [s] | paper / default |\n|---|---|---|---|---|")
    growth: dict[tuple[int, str], list[float]] = {}
    for d in dims:
        space = SearchSpace([Dim(f"x{k}", "float", 0.0, 1.0) for k in range(d)])
        for n in sizes:
            x, y = _data(d, n)
            splines = {(): PolyharmonicSpline(x, y)}
            row = {}
            for name, strategy in (("paper", PaperStrategy()), ("default", DefaultStrategy())):
                propose(space, splines, strategy=strategy)  # imports and caches first
                call = functools.partial(propose, space, splines, strategy=strategy)
                row[name] = float(np.median([_cpu(call) for _ in range(repeat)]))
                growth.setdefault((d, name), []).append(row[name])
            print(
                f"| {d} | {n} | {row['paper']:.3f} | {row['default']:.3f} | "
                f"{row['paper'] / row['default']:.2f} |"
            )
    print("\nGrowth exponent b of time ~ N^b (least squares over the sizes above):\n")
    print("| d | strategy | b |\n|---|---|---|")
    for (d, name), seconds in growth.items():
        b = np.polyfit(np.log(sizes), np.log(seconds), 1)[0]
        print(f"| {d} | {name} | {b:.2f} |")


def batch_table(dims: list[int], sizes: list[int], repeat: int) -> None:
    """A batch of four on a 21-level integer box, by the DYCORS and the Thompson fill.

    The Thompson fill factors the posterior covariance of the candidates of
    its pool (200 d) that can win a draw, at most ``MAX_DRAWN`` of them,
    which is cubic in their number: this is the fill's cost beside DYCORS's,
    as a login node pays it once per batch. The values are told in
    increasing order, as a search that still climbs tells them: DYCORS's
    radius then stays at its start and the pool at its largest (a stalled
    search's radius shrinks until most perturbations snap back to the best
    point on a 21-level grid).
    """
    print(f"\n### propose() CPU seconds, q = 4, by fill (median of {repeat}); {_load_line()}\n")
    print("| d | N | dycors [s] | thompson [s] | thompson / dycors |\n|---|---|---|---|---|")
    for d in dims:
        space = SearchSpace([Dim(f"x{k}", "int", 0, 20) for k in range(d)])
        for n in sizes:
            x, y = _data(d, n)
            order = np.argsort(y)
            splines = {(): PolyharmonicSpline(space.snap_unit(x[order]), y[order])}
            row = {}
            for fill in ("dycors", "thompson"):
                strategy = DefaultStrategy(batch_fill=fill)
                call = functools.partial(propose, space, splines, q=4, strategy=strategy)
                call()  # imports and caches first
                row[fill] = float(np.median([_cpu(call) for _ in range(repeat)]))
            print(
                f"| {d} | {n} | {row['dycors']:.3f} | {row['thompson']:.3f} | "
                f"{row['thompson'] / row['dycors']:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 4, 8; N = 20, 200; no propose")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes")
    parser.add_argument("--eval", type=int, default=20_000, help="evaluation points")
    parser.add_argument("--gradient", action="store_true", help="only the gradient table")
    parser.add_argument("--batch", action="store_true", help="only the batch-fill table")
    args = parser.parse_args()
    dims, sizes = ([4, 8], [20, 200]) if args.quick else ([4, 8, 16], [20, 200, 1000, 2500])
    if args.gradient:
        with search_threads():
            gradient_table([200, 1000, 2500], 8, args.eval, args.repeat)
        return
    if args.batch:
        with search_threads():
            batch_table([8, 20, 32], [40, 80, 160], args.repeat)
        return
    with search_threads():
        print("## Fit, fit + leave-one-out and evaluation, ours / scipy (CPU, one thread)")
        print("\n### As the machine is")
        fit_table(dims, sizes, args.repeat, args.eval)
        print(f"\n### Under a background load of {args.load} busy processes")
        with background_load(args.load):
            fit_table(dims, sizes, args.repeat, args.eval)
        gradient_table(sizes[1:], 8, args.eval, args.repeat)
        if not args.quick:
            memory_table(2500, 8)
    if not args.quick:
        threads_table([1000, 2500], 8, args.repeat)
        with background_load(args.load):
            print("\nUnder the background load:")
            threads_table([1000, 2500], 8, args.repeat)
        with search_threads():
            propose_table([8, 16], [200, 1000, 2500], 2)
            batch_table([8, 20, 32], [40, 80, 160], 2)


if __name__ == "__main__":
    main()
