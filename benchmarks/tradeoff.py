"""Trade-off search: how fast each method finds the front of accuracy against MACs.

NAS-shaped problems of ``problems.py`` (``nas5``, ``nas8``): the accuracy is the
problem's ``1 - loss``; the cost is the analytic multiply-accumulates per
224-px image of the BasicBlock ResNet with the problem's stage widths and
depths (:func:`resnet_gmacs`, checked against the cost model's count in
``tests/test_tradeoff.py``). Known before training, as splinenas knows it;
the peers measure it like a second objective.

Methods, all given the same integer box and budget of distinct evaluations:

* ``spline-front``: ``[experiment] tradeoff`` (:func:`nas.search.tradeoff.tradeoff_design`,
  then :func:`nas.search.tradeoff.front_batch`: hypervolume gain of the prediction);
* ``spline-front-corners``: the same proposals after the 2d+3 corner design;
* ``spline-scalar``: the corner design, then the same pool with a random Chebyshev
  scalarisation per batch slot (ParEGO's rule), the alternative the module docstring weighs;
* ``spline-metric``: splinenas maximising the accuracy alone (from the corner design);
* ``random``, Optuna ``nsga2`` (population 10) and ``motpe`` (multi-objective TPE).

Reported: hypervolume (reference: the true front's nadir, its worst accuracy and
largest cost, moved out by 10 % of each range, the usual choice) after 20/40/60 evaluations as a share of the true front's
(:func:`true_front`: scalarised coordinate descents plus a dense sample), and
evaluations until 95 % of it; the acceptance line compares spline-front's median
evaluations to 95 % over all seeds with the best peer's (target: at most 0.7x),
each from its longest runs in the ``--raw`` cache, so the peers' 200-evaluation
runs decide what their 60-evaluation runs cannot; a median known only as "more
than the budget" decides the line only where that bound does.

Usage (the peers' long runs first; the second call then computes only what the
cache lacks, and with a full cache nothing)::

    RAW=benchmarks/results/tradeoff-runs.json
    nice -n 10 python benchmarks/tradeoff.py --seeds 10 --methods random nsga2 motpe \
        --peer-budget 200 --raw $RAW --out benchmarks/results/tradeoff-peers.md
    nice -n 10 python benchmarks/tradeoff.py --problems nas8 --methods spline-front --seeds 10 \
        --budget 140 --raw $RAW --out /dev/null
    nice -n 10 python benchmarks/tradeoff.py --seeds 10 --raw $RAW --out benchmarks/results/tradeoff.md

(On nas8 the trade-off search reaches 95 % in 1 of 10 seeds within 60
evaluations, so its median is decided by runs of 140.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import qmc  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS, Problem  # noqa: E402
from reporting import emit  # noqa: E402
from sample_efficiency import spline_optimizer, variable_names  # noqa: E402

from nas.search.pareto import hypervolume, nondominated  # noqa: E402

Point = tuple[int, ...]
CHECKPOINTS = (20, 40, 60)
TARGET = 0.95
#: How far the hypervolume reference lies beyond the true front's nadir, as a share of its ranges.
REFERENCE_MARGIN = 0.1
DEFAULT_PROBLEMS = ("nas5", "nas8")
DEFAULT_METHODS = (
    "spline-front",
    "spline-front-corners",
    "spline-scalar",
    "spline-metric",
    "random",
    "nsga2",
    "motpe",
)


# ----------------------------------------------------------------------------- the cost


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def resnet_gmacs(
    widths: np.ndarray,
    depths: np.ndarray,
    resolution: int = 224,
    stem: int = 64,
    num_classes: int = 1000,
) -> np.ndarray:
    """GMACs of torchvision-style BasicBlock ResNets: 7x7/2 stem, 3x3/2 max-pool, stages.

    ``widths`` and ``depths`` are (M, S) arrays (one network per row). Each
    stage halves the resolution (but the first); its first block adapts
    channels and stride with a 1x1 projection; the classifier is counted. The
    count of :func:`nas.models.cost.count_macs` for ``family = "resnet"``,
    ``block = "basic"``, ``stem = "conv7"``, ``maxpool = true``.
    """
    widths = np.atleast_2d(np.asarray(widths, dtype=np.int64))
    depths = np.atleast_2d(np.asarray(depths, dtype=np.int64))
    size = _conv_out(resolution, 7, 2, 3)
    macs = np.full(widths.shape[0], size * size * 49 * 3 * stem, dtype=np.int64)
    size = _conv_out(size, 3, 2, 1)
    inplanes = np.full(widths.shape[0], stem, dtype=np.int64)
    for index in range(widths.shape[1]):
        width, depth = widths[:, index], depths[:, index]
        out = _conv_out(size, 3, 1 if index == 0 else 2, 1)
        area = out * out
        macs += area * 9 * inplanes * width + area * 9 * width * width  # first block
        project = (index > 0) | (inplanes != width)
        macs += np.where(project, area * inplanes * width, 0)
        macs += (depth - 1) * area * 18 * width * width  # the other blocks: two w -> w convs
        size, inplanes = out, width
    macs += inplanes * num_classes
    return macs / 1e9


def _stages(problem: Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stage widths and depths of problem points (the problems' own layouts)."""
    if problem.name == "nas5":
        return x[:, :3], np.column_stack([x[:, 3], x[:, 4], x[:, 4]])
    return x[:, :4], x[:, 4:]


def cost_of(problem: Problem) -> Callable[[np.ndarray], np.ndarray]:
    """Vectorised GMACs of problem points (M, d)."""

    def cost(x: np.ndarray) -> np.ndarray:
        widths, depths = _stages(problem, np.asarray(x, dtype=np.int64))
        return resnet_gmacs(widths, depths)

    return cost


# ----------------------------------------------------------------------------- the front


def true_front(
    problem: Problem, cost: Callable, weights: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, cost) of the best front found by scalarised coordinate descents and a dense sample."""
    lows, highs = np.array(problem.lows), np.array(problem.highs)
    unit = qmc.Halton(problem.d, scramble=True, seed=7).random(1 << 13)
    sample = np.floor(lows + unit * (highs - lows + 1)).clip(lows, highs)
    acc, c = 1.0 - problem.loss(sample), cost(sample)
    found = [(acc, c)]
    span_a, span_c = np.ptp(acc), np.ptp(c)
    for w in np.linspace(0.0, 1.0, weights):

        def score(x: np.ndarray, w: float = w) -> np.ndarray:
            return w * problem.loss(x) / span_a + (1 - w) * cost(x) / span_c

        for start in sample[np.argsort(score(sample))[:2]]:
            x = start.copy()
            for _ in range(8):
                moved = False
                for i in range(problem.d):
                    line = np.repeat(x[None], highs[i] - lows[i] + 1, axis=0)
                    line[:, i] = np.arange(lows[i], highs[i] + 1)
                    found.append((1.0 - problem.loss(line), cost(line)))
                    values = score(line)
                    j = int(np.argmin(values))
                    if values[j] < score(x[None])[0] - 1e-15:
                        x, moved = line[j].copy(), True
                if not moved:
                    break
    a = np.concatenate([f[0] for f in found])
    cc = np.concatenate([f[1] for f in found])
    keep = nondominated(a, cc)
    return a[keep], cc[keep]


# ----------------------------------------------------------------------------- methods


def _space_params(problem: Problem, x: Point) -> dict:
    return dict(zip(variable_names(problem), map(int, x), strict=True))


def _spline(kind: str, design: str = "corners") -> Callable:
    """A splinenas run: ``front`` (hypervolume gain), ``scalar`` (Chebyshev) or ``metric``,
    from the corner design or the trade-off design (:func:`nas.search.tradeoff.tradeoff_design`)."""

    def run(problem: Problem, cost: Callable, budget: int, seed: int) -> list[Point]:
        names = variable_names(problem)
        opt = spline_optimizer(problem, seed, design="corners")  # replaced by the cost design
        if design == "tradeoff":
            from nas.search.design import default_size
            from nas.search.optimizer import SplineOptimizer
            from nas.search.tradeoff import tradeoff_design

            start = tradeoff_design(
                opt.space,
                lambda many: cost(np.array([_x(p, names) for p in many])),
                default_size(opt.space),
                seed,
            )
            opt = SplineOptimizer(opt.space, opt.settings, design=start)
        told: list[Point] = []
        rng = np.random.default_rng([seed, 5])

        def costs(many: Sequence[dict]) -> np.ndarray:
            return cost(np.array([_x(p, names) for p in many]))

        while len(told) < budget:
            batch = []
            if kind != "metric" and not opt.unissued_design and opt.n_measured > problem.d:
                measured = [r for r in opt.history if np.isfinite(r.value)]
                rows = [(r.params, r.value, float(costs([r.params])[0])) for r in measured]
                taken = [r.params for r in opt.history]
                pick = _front if kind == "front" else _scalar
                batch = pick(opt, costs, rows, taken, seed + len(told), rng)
            if not batch:
                batch = [p.params for p in opt.suggest(1)]
            for params in batch:
                x = _x(params, names)
                opt.tell(params, problem(x))
                told.append(x)
        return told[:budget]

    return run


def _front(opt, costs, rows, taken, seed, rng) -> list[dict]:
    from nas.search.tradeoff import front_batch

    picks = front_batch(
        opt.space, opt.predict_interval, costs, rows, 1, seed, "minimize", taken=taken
    )
    return [p for p, _ in picks]


def _scalar(opt, costs, rows, taken, seed, rng) -> list[dict]:
    """ParEGO's rule: the pool's best optimistic random-weight Chebyshev scalarisation."""
    from nas.search.pareto import nondominated
    from nas.search.tradeoff import candidate_pool

    losses = np.array([r[1] for r in rows])
    cost_m = np.array([r[2] for r in rows])
    front = [rows[i][0] for i in nondominated(losses, cost_m, "minimize")]
    blocked = {opt.space.key(p) for p in taken}
    pool = [p for p in candidate_pool(opt.space, seed, front) if opt.space.key(p) not in blocked]
    if not pool:
        return []
    value, error = opt.predict_interval(pool)
    c = costs(pool)
    w = rng.random()
    lo_l, span_l = losses.min(), max(np.ptp(losses), 1e-12)
    lo_c, span_c = cost_m.min(), max(np.ptp(cost_m), 1e-12)
    optimistic = value - np.where(np.isfinite(error), error, 0.0)
    score = np.maximum(w * (optimistic - lo_l) / span_l, (1 - w) * (c - lo_c) / span_c)
    score[~np.isfinite(score)] = np.inf
    return [pool[int(np.argmin(score))]]


def _x(params: dict, names: Sequence[str]) -> Point:
    return tuple(int(params[n]) for n in names)


def _random(problem: Problem, cost: Callable, budget: int, seed: int) -> list[Point]:
    rng = np.random.default_rng([seed, 11])
    seen: dict[Point, None] = {}
    while len(seen) < budget:
        seen.setdefault(
            tuple(int(v) for v in rng.integers(problem.lows, np.array(problem.highs) + 1)), None
        )
    return list(seen)


def _optuna(kind: str) -> Callable:
    def run(problem: Problem, cost: Callable, budget: int, seed: int) -> list[Point]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if kind == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(population_size=10, seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
        names = variable_names(problem)
        seen: dict[Point, tuple[float, float]] = {}
        calls = 0
        while len(seen) < budget and calls < 4 * budget:
            trial = study.ask()
            x = tuple(
                trial.suggest_int(n, lo, hi)
                for n, lo, hi in zip(names, problem.lows, problem.highs, strict=True)
            )
            calls += 1
            if x not in seen:
                seen[x] = (problem(x), float(cost(np.array([x]))[0]))
            study.tell(trial, list(seen[x]))
        return list(seen)

    return run


METHODS: dict[str, Callable] = {
    "spline-front": _spline("front", "tradeoff"),
    "spline-front-corners": _spline("front"),
    "spline-scalar": _spline("scalar"),
    "spline-metric": _spline("metric"),
    "random": _random,
    "nsga2": _optuna("nsga2"),
    "motpe": _optuna("motpe"),
}


# ----------------------------------------------------------------------------- scoring


def hv_curve(
    problem: Problem, cost: Callable, told: Sequence[Point], reference, total: float
) -> np.ndarray:
    """Share of the true front's hypervolume after each evaluation."""
    x = np.array(told, dtype=float)
    acc, c = 1.0 - problem.loss(x), cost(x)
    return np.array(
        [hypervolume(acc[: k + 1], c[: k + 1], reference) / total for k in range(len(told))]
    )


#: The peers of the acceptance target (splinenas's own variants are not peers).
PEERS = ("random", "nsga2", "motpe")
#: Target: evaluations to 95 % at most this share of the best peer's.
TARGET_RATIO = 0.7


# ----------------------------------------------------------------------------- the run cache


def _key(problem: str, method: str, seed: int, budget: int) -> str:
    return f"{problem}|{method}|{seed}|{budget}"


def _load(raw: Path | None) -> dict[str, dict]:
    """Finished runs by :func:`_key`: the points told in order and the CPU seconds."""
    return json.loads(raw.read_text()) if raw is not None and raw.exists() else {}


def _save(raw: Path | None, runs: dict[str, dict]) -> None:
    if raw is not None:
        tmp = raw.with_name(raw.name + ".tmp")
        tmp.write_text(json.dumps(runs, separators=(",", ":")))
        tmp.replace(raw)


def _run(
    runs: dict[str, dict], name: str, method: str, seed: int, budget: int, problem, cost
) -> dict:
    """One run, from the cache when it holds it."""
    key = _key(name, method, seed, budget)
    if key not in runs:
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            told = METHODS[method](problem, cost, budget, seed)
        runs[key] = {
            "told": [list(map(int, x)) for x in told],
            "seconds": time.process_time() - start,
        }
    return runs[key]


def _scorer(
    problem: Problem, cost: Callable, reference, total: float
) -> Callable[[Sequence[Sequence[int]]], np.ndarray]:
    """:func:`hv_curve` of a cached run's points."""
    return lambda told: hv_curve(problem, cost, [tuple(x) for x in told], reference, total)


def _reached(curve: np.ndarray) -> float:
    """Evaluations until :data:`TARGET` of the true hypervolume; inf when never."""
    return float(np.argmax(curve >= TARGET)) + 1 if curve.max() >= TARGET else math.inf


@dataclass(frozen=True)
class Evals:
    """Evaluations to 95 % of one method's seeds, each run for ``budget`` evaluations."""

    method: str
    budget: int
    seeds: list[float]

    @property
    def median(self) -> float:
        """The median over all seeds (a seed that never got there counts as more than ``budget``)."""
        return float(np.median(self.seeds))

    def shown(self) -> str:
        return f"> {self.budget}" if math.isinf(self.median) else f"{self.median:.0f}"


def _longest(runs: dict[str, dict], name: str, method: str, seeds: int, score) -> Evals | None:
    """The method's evaluations to 95 % from its longest runs in the cache that cover ``seeds``
    seeds: a peer run for 200 evaluations tells more than one for 60."""
    budgets = {int(k.split("|")[3]) for k in runs if k.startswith(f"{name}|{method}|")}
    for budget in sorted(budgets, reverse=True):
        keys = [_key(name, method, seed, budget) for seed in range(seeds)]
        if all(k in runs for k in keys):
            return Evals(method, budget, [_reached(score(runs[k]["told"])) for k in keys])
    return None


def _verdict(problem: str, ours: Evals | None, peers: list[Evals]) -> str:
    """The acceptance line: spline-front's median evaluations to 95 % over all seeds against
    the best peer's, each known exactly or only as more than its budget.

    The ratio is bounded from both sides: met when even its largest possible
    value is at most :data:`TARGET_RATIO`, missed when even its smallest is above
    it, else not shown (neither median is known well enough to decide).
    """
    if not peers:
        return ""
    best = min(peers, key=lambda e: (e.median, -e.budget))
    if math.isinf(best.median):
        shown = ", ".join(f"{e.method} > {e.budget}" for e in peers)
        line = (
            f"- {problem}: evaluations to 95 %, median over all seeds: no peer gets there ({shown})"
        )
        theirs_low = min(e.budget for e in peers)
    else:
        line = f"- {problem}: evaluations to 95 %, median over all seeds: best peer {best.method} {best.shown()} (of {best.budget})"
        theirs_low = best.median
    if ours is None:
        return line
    line += f", spline-front {ours.shown()} (of {ours.budget}); target <= {TARGET_RATIO}x: "
    if math.isfinite(ours.median) and ours.median / theirs_low <= TARGET_RATIO:
        bound = "below " if math.isinf(best.median) else ""
        return line + f"met: ratio {bound}{ours.median / theirs_low:.2f}"
    ours_low = ours.median if math.isfinite(ours.median) else ours.budget
    if math.isfinite(best.median) and ours_low / best.median > TARGET_RATIO:
        bound = "" if math.isfinite(ours.median) else "above "
        return line + f"missed: ratio {bound}{ours_low / best.median:.2f}"
    return line + "not shown: neither median is known well enough to decide"


# ----------------------------------------------------------------------------- the report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(DEFAULT_PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument(
        "--peer-budget",
        type=int,
        default=60,
        help="evaluations of the peers (random, nsga2, motpe) for their evaluations to 95 %%; "
        "the hypervolume columns stay at 20/40/60",
    )
    parser.add_argument(
        "--raw",
        type=Path,
        help="JSON file of finished runs to reuse and extend; the acceptance lines read "
        "every method's longest cached runs (the peers' 200-evaluation runs, say)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs = _load(args.raw)
    head = ["problem", "method", *(f"HV@{k}" for k in CHECKPOINTS), "evals to 95 %", "CPU s/run"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    verdicts = []
    for name in args.problems:
        problem = PROBLEMS[name]()
        cost = cost_of(problem)
        front_a, front_c = true_front(problem, cost)
        reference = (
            front_a.min() - REFERENCE_MARGIN * np.ptp(front_a),
            front_c.max() + REFERENCE_MARGIN * np.ptp(front_c),
        )
        total = hypervolume(front_a, front_c, reference)
        print(f"{name}: true front {len(front_a)} points, HV {total:.4g}", file=sys.stderr)

        score = _scorer(problem, cost, reference, total)
        for method in args.methods:
            budget = max(args.peer_budget if method in PEERS else args.budget, args.budget)
            done = [_run(runs, name, method, s, budget, problem, cost) for s in range(args.seeds)]
            _save(args.raw, runs)
            curves = [score(r["told"]) for r in done]
            cells = [name, method]
            for k in CHECKPOINTS:
                at = [cv[min(k, len(cv)) - 1] for cv in curves]
                cells.append(f"{100 * np.median(at):.1f} %")
            got = [r for r in map(_reached, curves) if math.isfinite(r)]
            cells.append(
                f"{np.median(got):.0f} ({len(got)}/{len(curves)})"
                if got
                else f"- (0/{len(curves)})"
            )
            cells.append(f"{np.mean([r['seconds'] for r in done]):.1f}")
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], file=sys.stderr)
        peers = [_longest(runs, name, p, args.seeds, score) for p in PEERS]
        ours = _longest(runs, name, "spline-front", args.seeds, score)
        verdicts.append(_verdict(name, ours, [e for e in peers if e is not None]))
    text = (
        f"Hypervolume of (accuracy, GMACs) as a share of the true front's, median of {args.seeds} "
        f"seeds; evaluations to {TARGET:.0%}: median over the seeds that got there (count).\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(v for v in verdicts if v)
        + "\n"
    )
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
