"""How often a held-out measurement lands inside the spline's stated error estimate.

``splinenas predict`` and ``splinenas front`` give each prediction an error
estimate: the RMS leave-one-out error of the d+1 measured points nearest it
(:mod:`nas.search.uncertainty`). This benchmark measures what that number
means. A search runs on a problem of ``problems.py``; after every batch the
spline fitted to the points measured so far predicts

* its *next proposal* before it is measured (the measurement a search acts on), and
* 64 *random* legal points of the box (what ``front`` and ``predict`` are asked anywhere),

and the share of the true values inside ``prediction +/- k x error`` is counted
for k = 1 and 2, by the number of measured points.

Usage::

    python benchmarks/calibration.py --seeds 5 --out benchmarks/results/calibration.md
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS  # noqa: E402
from reporting import emit  # noqa: E402
from sample_efficiency import spline_optimizer, variable_names  # noqa: E402

#: Problems measured (NAS-shaped first, then two standard functions).
DEFAULT_PROBLEMS = ("nas5", "nas8", "nas8i", "nas5cat", "hartmann6", "rosenbrock5")
#: Measured-point counts the table reports (the share over the batches up to each).
STAGES = ((0, 20), (20, 40), (40, 60))
#: Random held-out points per refit.
RANDOM_POINTS = 64
MULTIPLIERS = (1.0, 2.0)


def run(problem_name: str, seed: int, budget: int) -> dict[str, list[tuple[int, float, float]]]:
    """(measured points, |true - predicted|, error) of every held-out prediction of one search."""
    problem = PROBLEMS[problem_name]()
    names = variable_names(problem)
    opt = spline_optimizer(problem, seed)
    rng = np.random.default_rng([seed, 99])
    out: dict[str, list[tuple[int, float, float]]] = {"proposal": [], "random": []}
    while opt.n_measured < budget:
        batch = opt.suggest()
        if not batch:
            break
        n = opt.n_measured
        fitted = opt.fit() is not None
        if fitted:
            values, errors = opt.predict_interval([p.params for p in batch])
            for p, v, e in zip(batch, values, errors, strict=True):
                if p.origin != "initial":
                    out["proposal"].append((n, abs(problem(_x(p.params, names)) - v), e))
            lows, highs = np.array(problem.lows), np.array(problem.highs)
            draws = rng.integers(lows, highs + 1, size=(RANDOM_POINTS, problem.d))
            params = [dict(zip(names, map(int, row), strict=True)) for row in draws]
            values, errors = opt.predict_interval(params)
            truth = problem.loss(draws.astype(float))
            out["random"] += [
                (n, abs(t - v), e) for t, v, e in zip(truth, values, errors, strict=True)
            ]
        for p in batch:
            opt.tell(p.params, problem(_x(p.params, names)))
    return out


def _x(params: dict, names: Sequence[str]) -> tuple[int, ...]:
    return tuple(int(params[n]) for n in names)


def table(rows: dict[str, dict[str, list[tuple[int, float, float]]]]) -> str:
    """Markdown: per problem and kind, share inside +/-1 and +/-2 errors per stage."""
    head = ["problem", "held out", *(f"n {a}-{b}: ±1e / ±2e" for a, b in STAGES), "all: ±1e / ±2e"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    pooled: dict[str, list] = {"proposal": [], "random": []}
    for name, kinds in rows.items():
        for kind, items in kinds.items():
            pooled[kind] += items
            lines.append(_row(name, kind, items))
    for kind, items in pooled.items():
        lines.append(_row("**all**", kind, items))
    return "\n".join(lines)


def _row(name: str, kind: str, items: list[tuple[int, float, float]]) -> str:
    cells = [name, kind]
    for a, b in (*STAGES, (0, 10**9)):
        chosen = [(g, e) for n, g, e in items if a <= n < b and np.isfinite(e)]
        if not chosen:
            cells.append("-")
            continue
        gap, err = np.array(chosen).T
        shares = [f"{100 * np.mean(gap <= k * err):.0f} %" for k in MULTIPLIERS]
        cells.append(" / ".join(shares) + f" ({len(chosen)})")
    return "| " + " | ".join(cells) + " |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(DEFAULT_PROBLEMS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = {}
    for name in args.problems:
        runs = [run(name, seed, args.budget) for seed in range(args.seeds)]
        rows[name] = {k: [item for r in runs for item in r[k]] for k in ("proposal", "random")}
        print(f"{name}: done", file=sys.stderr)
    text = (
        f"Share of held-out true values inside prediction ± k × error estimate "
        f"({args.seeds} seeds, budget {args.budget}; count of predictions in brackets).\n\n"
        + table(rows)
        + "\n"
    )
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
