"""Constrained search: evaluations to 1 % regret under a cost bound, against the unconstrained search.

NAS-shaped problems of ``problems.py`` (``nas5``, ``nas8``) with the analytic
GMACs of ``tradeoff.py`` as the cost. The bound is the median cost of the box
(over a dense quasi-random sample of its legal points), so it cuts the box in
half and, on both problems, excludes the unconstrained optimum's region or
passes close to it. splinenas searches of the metric, budget 60, default
settings:

* ``constrained``: ``[experiment.constraints] gmacs = <median>`` as the
  controller runs it: the bound as the search's admissible predicate
  (:class:`nas.search.optimizer.SplineOptimizer`'s ``feasible``: the argmax
  is maximised within it) from the default space-filling design, its points
  beyond the bound left out (more space-filling points follow while too few
  are left to fit a spline); regret against the best accuracy within the
  bound;
* ``constrained-cost-spread``: the same from a design spread over the cost
  within the bound (:func:`nas.search.tradeoff.tradeoff_design`, what the
  controller used for a bound on a known cost before; a trade-off search
  still starts from it);
* ``constrained-corners``: the same from the 2d+3 corner design (the corners
  beyond the bound left out);
* ``unconstrained``: no bound, regret against the box's optimum, from the
  corner design and from the (default) space-filling design.

Regret is normalised by the loss range of the whole box (as in
``sample_efficiency.py``); reported: evaluations until the best measured point
is within 1 % regret (median over the seeds that got there, and over all
seeds counting a miss as more than the budget), regret after 20/40/60.
Target: the constrained search reaches 1 % as fast as the unconstrained one.
Every constrained evaluation is checked against the bound.

Usage::

    nice -n 10 python benchmarks/constrained.py --seeds 10 --out benchmarks/results/constrained.md
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import qmc  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS, Problem  # noqa: E402
from reporting import emit  # noqa: E402
from sample_efficiency import spline_optimizer, variable_names  # noqa: E402
from tradeoff import cost_of  # noqa: E402

CHECKPOINTS = (20, 40, 60)
#: Normalised regret that counts as found.
TARGET = 0.01
DEFAULT_PROBLEMS = ("nas5", "nas8")
#: (name, bounded, initial design): the controller's bounded search (the default
#: space-filling design), the same from a design spread over the cost within the bound
#: and from the 2d+3 corners, and the unbounded search.
VARIANTS = (
    ("constrained", True, "space-filling"),
    ("constrained-cost-spread", True, "cost"),
    ("constrained-corners", True, "corners"),
    ("unconstrained", False, "corners"),
    ("unconstrained-space-filling", False, "space-filling"),
)
#: Quasi-random points of the box that set the bound and start the constrained optimum's search.
SAMPLE = 1 << 14


def box_sample(problem: Problem) -> np.ndarray:
    lows, highs = np.array(problem.lows), np.array(problem.highs)
    unit = qmc.Halton(problem.d, scramble=True, seed=11).random(SAMPLE)
    return np.floor(lows + unit * (highs - lows + 1)).clip(lows, highs)


def constrained_optimum(problem: Problem, cost: Callable, limit: float) -> float:
    """The least loss within ``cost <= limit``: coordinate descents from the best feasible samples."""
    lows, highs = np.array(problem.lows), np.array(problem.highs)
    sample = box_sample(problem)
    sample = sample[cost(sample) <= limit]
    best = math.inf
    for start in sample[np.argsort(problem.loss(sample))[:16]]:
        x, value = start.copy(), float(problem.loss(start[None])[0])
        for _ in range(30):
            moved = False
            for i in range(problem.d):
                line = np.repeat(x[None], highs[i] - lows[i] + 1, axis=0)
                line[:, i] = np.arange(lows[i], highs[i] + 1)
                values = np.where(cost(line) <= limit, problem.loss(line), np.inf)
                j = int(np.argmin(values))
                if values[j] < value - 1e-15:
                    x, value, moved = line[j].copy(), float(values[j]), True
            if not moved:
                break
        best = min(best, value)
    return best


def search(
    problem: Problem,
    cost: Callable,
    limit: float | None,
    budget: int,
    seed: int,
    design: str = "corners",
) -> list[float]:
    """Losses of a metric search's evaluations, in order (within ``limit`` when given)."""
    from nas.search.optimizer import SplineOptimizer
    from nas.search.propose import SearchError

    names = variable_names(problem)
    opt = spline_optimizer(problem, seed, design="corners" if design == "cost" else design)

    def x_of(params: dict) -> np.ndarray:
        return np.array([[params[n] for n in names]], dtype=float)

    if limit is not None:

        def within(p: dict) -> bool:
            return float(cost(x_of(p))[0]) <= limit

        start = None
        if design == "cost":
            from nas.search.design import default_size
            from nas.search.tradeoff import tradeoff_design

            start = tradeoff_design(
                opt.space,
                lambda many: cost(np.vstack([x_of(p) for p in many])),
                default_size(opt.space),
                seed,
                within,
                top=1.0,
            )
        opt = SplineOptimizer(opt.space, opt.settings, feasible=within, design=start)
    losses: list[float] = []
    while len(losses) < budget:
        try:
            batch = opt.suggest(1)
        except SearchError:
            break
        for proposal in batch:
            x = x_of(proposal.params)
            if limit is not None and float(cost(x)[0]) > limit:
                raise AssertionError(f"a proposal breaks the bound: {proposal.params}")
            value = float(problem.loss(x)[0])
            opt.tell(proposal.params, value)
            losses.append(value)
    return losses


def evaluations_to(regrets: np.ndarray) -> float:
    hit = np.flatnonzero(regrets <= TARGET)
    return float(hit[0] + 1) if hit.size else math.inf


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(DEFAULT_PROBLEMS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--variants", nargs="+", default=[v[0] for v in VARIANTS])
    args = parser.parse_args(argv)
    head = ["problem", "search", "bound (GMACs)", "optimum loss", "evals to 1 %",
            "all seeds", *(f"regret@{k}" for k in CHECKPOINTS)]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    verdicts = []
    for name in args.problems:
        problem = PROBLEMS[name]()
        cost = cost_of(problem)
        limit = float(np.median(cost(box_sample(problem))))
        medians = {}
        bounded = constrained_optimum(problem, cost, limit)
        for kind, bound, design in (v for v in VARIANTS if v[0] in args.variants):
            bound = limit if bound else None
            optimum = problem.f_min if bound is None else bounded
            curves, reached = [], []
            for seed in range(args.seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    losses = search(problem, cost, bound, args.budget, seed, design)
                regrets = (np.minimum.accumulate(losses) - optimum) / problem.span
                curves.append(regrets)
                reached.append(evaluations_to(regrets))
            got = [r for r in reached if math.isfinite(r)]
            medians[kind] = float(np.median(reached))
            cells = [
                name,
                kind,
                f"{limit:.3g}" if bound is not None else "-",
                f"{optimum:.4f}",
                f"{np.median(got):.0f} ({len(got)}/{len(reached)})"
                if got
                else f"- (0/{len(reached)})",
                "> budget" if math.isinf(medians[kind]) else f"{medians[kind]:g}",
                *(
                    f"{100 * np.median([c[min(k, len(c)) - 1] for c in curves]):.2f} %"
                    for k in CHECKPOINTS
                ),
            ]
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], file=sys.stderr)
        if "constrained" not in medians:
            continue
        ours = medians["constrained"]
        for other in (k for k in medians if k.startswith("unconstrained")):
            theirs = medians[other]
            verdicts.append(
                f"- {name}: median evaluations to 1 % regret over all seeds, constrained "
                f"{ours:g} vs {other} {theirs:g}: "
                + ("met" if ours <= theirs else f"missed by {ours - theirs:g} evaluations")
            )
    text = (
        f"Evaluations to {TARGET:.0%} normalised regret, {args.seeds} seeds, budget "
        f"{args.budget}; bound: the box's median GMACs. 'evals to 1 %': median over the seeds "
        "that got there (count); 'all seeds': median counting a miss as more than the budget.\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(verdicts)
        + "\n"
    )
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
