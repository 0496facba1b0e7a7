"""How close ``noise = "auto"`` measures the noise sd on problems with known noise.

For each problem, noise level (sd as a fraction of the loss range; 0 = exact) and
seed, the spline search without a noise option runs to the budget on the noisy
problem (``sample_efficiency.py``'s evaluator and its ``default`` method, so the
points are where a search puts them); :func:`nas.search.noise.estimate_noise` then
measures the sd from the first n measurements. Cells: the ratio estimate / true sd
(median, min-max over seeds), how many runs measured an sd within 1.5x of the true
one, and how many called it unknown (0 used: exact spline). On exact problems the
estimate is shown as a fraction of the range.

Usage::

    python benchmarks/noise_estimate.py --out benchmarks/results/noise_estimate.md \\
        --raw /tmp/noise-runs.json --reuse /tmp/noise-search.json

``--raw`` keeps the search runs (points and measurements) as ``sample_efficiency.py
--raw`` does, with the same keys; ``--reuse`` reads further such files (e.g. the
``default`` runs of the ``noise = "auto"`` comparison) without writing them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS  # noqa: E402
from reporting import emit  # noqa: E402
from sample_efficiency import Task, _problem, run_task  # noqa: E402

#: Noise levels (fractions of the loss range) and support sizes measured by default.
LEVELS = (0.0, 0.003, 0.01, 0.03)
SIZES = (20, 40, 80)
#: A ratio estimate / true within this factor counts as right.
WITHIN = 1.5


def estimates(run: dict, problem_name: str, sizes: Sequence[int]) -> dict[int, object]:
    """The :class:`NoiseEstimate` of the first n measurements of ``run``, per n."""
    from nas.search.noise import estimate_noise

    problem = _problem(problem_name)
    lows, highs = np.array(problem.lows, float), np.array(problem.highs, float)
    unit = (np.array(run["points"], float) - lows) / (highs - lows)
    values = np.array(run["measured"], float)
    return {n: estimate_noise(unit[:n], values[:n]) for n in sizes if n <= len(values)}


def table(runs: dict, tasks: Sequence[Task], sizes: Sequence[int]) -> str:
    """Markdown: per problem and level, the ratio and counts at each n."""
    seeds = len({t.seed for t in tasks})
    head = ["problem", "noise sd", *(f"n = {n}" for n in sizes)]
    out = [
        f"Search runs without a noise option, budget {tasks[0].budget}, {seeds} seeds. Cells: "
        f"estimate / true sd, median (min-max) over the runs that measured one; right: within "
        f"{WITHIN}x; unknown: 0 used (exact spline). Exact problems: the estimate in % of the "
        "range (median, max).\n",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(["---"] * len(head)) + " |",
    ]
    groups = list(dict.fromkeys((t.problem, t.noise_fraction if t.noisy else 0.0) for t in tasks))
    for prob, level in groups:
        chosen = [
            t for t in tasks if (t.problem, t.noise_fraction if t.noisy else 0.0) == (prob, level)
        ]
        per_n: dict[int, list] = {n: [] for n in sizes}
        for t in chosen:
            for n, est in estimates(runs[t.key], prob, sizes).items():
                per_n[n].append(est)
        span = _problem(prob).span
        cells = [_cell(per_n[n], level * span, span) for n in sizes]
        out.append("| " + " | ".join([prob, f"{level:.1%}", *cells]) + " |")
    return "\n".join(out) + "\n"


def _cell(found: list, true_sd: float, span: float) -> str:
    if not found:
        return "-"
    unknown = sum(not e.sd > 0.0 for e in found)
    if true_sd == 0.0:
        sds = [100.0 * e.sd / span for e in found]
        return f"{np.median(sds):.2g} %, max {max(sds):.2g} %; unknown {unknown}/{len(found)}"
    ratios = [e.sd / true_sd for e in found if e.sd > 0.0]
    right = sum(1 / WITHIN <= r <= WITHIN for r in ratios)
    shown = f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"
    return f"{shown}; right {right}/{len(found)}, unknown {unknown}/{len(found)}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", default="nas5,nas8i,nas8c,branin")
    p.add_argument("--levels", default=",".join(f"{v:g}" for v in LEVELS))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--workers", type=int, default=1, help="processes (at most 2)")
    p.add_argument("--raw", type=Path, help="JSON file of finished runs to reuse and extend")
    p.add_argument("--reuse", type=Path, nargs="*", default=[], help="more run files, read only")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    args = p.parse_args(argv)
    args.problems = args.problems.split(",")
    unknown = [n for n in args.problems if n not in PROBLEMS]
    if unknown:
        p.error(f"unknown problem(s) {', '.join(unknown)}; choose from {', '.join(PROBLEMS)}")
    try:
        args.levels = [float(v) for v in args.levels.split(",")]
        args.sizes = [int(v) for v in args.sizes.split(",")]
    except ValueError as exc:
        p.error(f"--levels and --sizes take comma lists of numbers: {exc}")
    if any(not 0.0 <= v < 1.0 for v in args.levels) or any(n < 1 for n in args.sizes):
        p.error("--levels must lie in [0, 1) and --sizes be positive")
    if not 1 <= args.workers <= 2:
        p.error(f"--workers must be 1 or 2, got {args.workers}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    budget = max(args.sizes)
    tasks = [
        Task("default", prob, level > 0.0, seed, budget, level if level > 0.0 else 0.001)
        for prob in args.problems
        for level in args.levels
        for seed in range(args.seeds)
    ]
    runs: dict[str, dict] = {}
    for path in [*args.reuse, *([args.raw] if args.raw else [])]:
        if path.exists():
            runs.update(json.loads(path.read_text()))
    todo = [t for t in tasks if "points" not in runs.get(t.key, {})]
    print(f"{len(todo)} runs to do, {len(tasks) - len(todo)} reused", file=sys.stderr)
    mine = json.loads(args.raw.read_text()) if args.raw and args.raw.exists() else {}
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for i, result in enumerate(pool.imap_unordered(run_task, todo), 1):
            runs[result["key"]] = mine[result["key"]] = result
            if args.raw and (i % 10 == 0 or i == len(todo)):
                args.raw.write_text(json.dumps(mine))
            print(f"\r{i}/{len(todo)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    emit(table(runs, tasks, args.sizes), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
