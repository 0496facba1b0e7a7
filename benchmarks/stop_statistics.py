"""What the fit looks like where the default stop rule fires, and whether it was right.

Runs the default strategy on benchmark problems (noise-free, q = 1) and, at the
first measurement where conditions (a)-(c) of the default rule hold
(:mod:`nas.search.stopping`), records the regret of the point the search would
return and three statistics of the fit: the cross-validated R² (1 - sum of squared
leave-one-out errors / sum of squares about the mean), the RMS leave-one-out error
and the largest leave-one-out error among the best's d+1 nearest measured points
(condition (d)), both in tolerances. A statistic that could tell a wrong stop from
a right one would differ between the two kinds of row.

Usage::

    python benchmarks/stop_statistics.py --problems nas5,nas8h,styblinski8s --seeds 10
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS  # noqa: E402
from reporting import print_table  # noqa: E402
from sample_efficiency import (  # noqa: E402
    BudgetSpent,
    Evaluator,
    _problem,
    _true_of_best,
    spline_optimizer,
    variable_names,
)

from nas.search.settings import DESIGNS  # noqa: E402


def first_stop(task: tuple[str, int, str, int]) -> dict | None:
    """Statistics at the first measurement where (a)-(c) hold; None if they never do."""
    name, seed, design, budget = task
    problem = _problem(name)
    ev = Evaluator(problem, budget, False, seed)
    opt = spline_optimizer(problem, seed, design=design)
    names = variable_names(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            while True:
                for params in opt.ask():
                    opt.tell(params, ev([params[n] for n in names]))
                evidence = opt.stop_evidence()
                tol = evidence.tolerance
                # (c) and (d) are computed only once (a) and (b) hold
                checked = evidence.local_error is not None
                if checked and evidence.gain < tol:
                    return _statistics(opt, problem, names, tol, len(ev.true), evidence.stop)
        except BudgetSpent:
            return None


def _statistics(opt, problem, names, tol: float, n: int, stops: bool) -> dict:
    summary = opt.fit()
    errors = np.concatenate([s.loo_errors() for s in summary.splines.values()])
    values = np.concatenate([s.values for s in summary.splines.values()])
    return {
        "n": n,
        "regret": problem.regret(_true_of_best(problem, opt, names)),
        "r2": float(1.0 - np.sum(errors**2) / np.sum((values - values.mean()) ** 2)),
        "rms": float(np.sqrt(np.mean(errors**2))) / tol,
        "neighbours": summary.local_loo / tol,
        "stops": stops,
    }


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


COLUMNS = [
    "problem",
    "regret at the stop",
    "runs",
    "median n",
    "LOO R²",
    "LOO RMS / tol",
    "neighbours' LOO / tol",
    "(d) holds too",
]


def rows(results: dict[str, list[dict]]) -> list[dict[str, str]]:
    """One row per problem and kind of stop (returned regret above or within 1 %)."""
    out = []
    for name, found in results.items():
        for wrong in (False, True):
            group = [r for r in found if (r["regret"] > 1e-2) == wrong]
            if group:
                cells = [
                    name,
                    "> 1 %" if wrong else "<= 1 %",
                    str(len(group)),
                    f"{np.median([r['n'] for r in group]):.0f}",
                    _span([r["r2"] for r in group]),
                    _span([r["rms"] for r in group]),
                    _span([r["neighbours"] for r in group]),
                    f"{sum(r['stops'] for r in group)}/{len(group)}",
                ]
                out.append(dict(zip(COLUMNS, cells, strict=True)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", default="nas5,nas8,nas8i,nas8h,nas8c,branin,styblinski8s")
    p.add_argument("--design", choices=DESIGNS, default="corners")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    names = args.problems.split(",")
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        p.error(f"unknown problem(s) {', '.join(unknown)}; choose from {', '.join(PROBLEMS)}")
    tasks = [(n, s, args.design, args.budget) for n in names for s in range(args.seeds)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        found = pool.map(first_stop, tasks, chunksize=1)
    results: dict[str, list[dict]] = {n: [] for n in names}
    for (name, *_), result in zip(tasks, found, strict=True):
        if result is not None:
            results[name].append(result)
    print(
        f"First measurement where (a)-(c) of the default rule hold, {args.design} design, "
        f"{args.seeds} seeds, budget {args.budget}; the last column: runs where (d) held "
        "there too, so the rule stopped"
    )
    print_table(rows(results), COLUMNS, float_format=".3g")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
