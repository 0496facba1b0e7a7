"""How many evaluations each optimiser needs on integer-grid problems.

Every method gets the same integer box, the same budget of *distinct* evaluations
and, in noisy runs, the same noise sequence. A repeated point is served from a cache
(a NAS tool would not retrain a measured architecture) and does not count; a method
that only repeats itself is stopped after four budgets' worth of calls. Regret is
measured on the noise-free loss of the best point evaluated so far, normalised by
the loss range of the grid (see ``problems.py``).

Methods: the spline optimiser (``paper`` = Algorithm 1 as published, ``default`` =
:mod:`nas.search.strategies`; q = 1, batches of q = 4, and ``default-pipeline-q4``: four
points always in flight, one asked for as each comes back), random search, Optuna TPE (multivariate) and
GP samplers, scikit-optimize ``gp_minimize``, pySOT DYCORS and SRBF. Peers that do
not import are skipped with a note (install the ``bench`` extra).

A categorical dimension of a problem (``Problem.categorical``) is a categorical dimension
for the spline optimiser, Optuna (``suggest_categorical``) and scikit-optimize
(``Categorical``); pySOT has no categorical type and gets an integer coordinate (0/1 for
two choices), and random search draws the label uniformly.

Usage::

    python benchmarks/sample_efficiency.py --quick
    python benchmarks/sample_efficiency.py --out benchmarks/results/sample_efficiency.md \\
        --raw /tmp/runs.json

``--raw`` keeps every finished run in a JSON file and reuses it, so a full run can be
extended (more methods, more seeds) without repeating what is done. A run's key is
``method|problem|exact-or-noisy|seed|budget`` and a run depends only on it, so peers'
runs cached once serve every later comparison.

``--to-stop`` ends each spline run where its own stop rule fires, as a user's search
ends (keys end in ``|to-stop``): the stop tables are exact and cost only what the
searches spent, but the evaluations-to-regret tables then count a run that stopped
above a regret as never getting there. The default rule's checks away from the best
(:mod:`nas.search.exploration`) are proposals of the search, so a run's trajectory
depends on its rule; where the other rule would have stopped is noted on the same run.

The tables give, per problem and method, evaluations to 1 % and 0.1 % regret (median
and seeds that got there), the final regret of the point the method returns, and for
the spline methods the too-early rate: runs whose own stop rule fired while their
returned point had regret > 1 %; then the same pooled across all problems; and the room
for the default rule's evidence: runs whose best came within 1 % early enough for its
stall window and checks before the budget, a bound on the runs any rule with that
evidence can stop right.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# One BLAS/torch thread per process: the pool is the parallelism (set before numpy loads).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import NOISE_FRACTION, PROBLEMS, Problem  # noqa: E402
from reporting import emit  # noqa: E402

from nas.search.settings import BATCH_FILLS, MEASURED_CAPPING  # noqa: E402
from nas.search.stopping import CHECKS_NEEDED, stall_needed  # noqa: E402

Point = tuple[int, ...]
Runner = Callable[[Problem, "Evaluator", int], None]

#: Repeated calls allowed, in multiples of the budget, before a method is stopped.
CALL_CAP = 4


class BudgetSpent(Exception):
    """Raised by the evaluator to end a run: the budget of distinct points is used."""


class Evaluator:
    """The objective every method calls: caches, adds noise, records the trace."""

    def __init__(
        self,
        problem: Problem,
        budget: int,
        noisy: bool,
        seed: int,
        noise_fraction: float = NOISE_FRACTION,
    ) -> None:
        self.problem = problem
        self.budget = budget
        self.noise_sd = noise_fraction * problem.span if noisy else 0.0
        self.rng = np.random.default_rng([seed, 2024])
        self.cache: dict[Point, float] = {}
        self.true: list[float] = []
        #: the distinct points evaluated, in order, and their (noisy) measurements
        self.points: list[Point] = []
        self.measured: list[float] = []
        self.calls = 0
        #: stop rule -> (distinct evaluations, noise-free loss of the point returned) at its first stop
        self.stops: dict[str, tuple[int, float]] = {}
        #: noise-free loss of the point the method returns at the end (None: best evaluated)
        self.returned: float | None = None
        #: end a spline run where its own stop rule fires
        self.to_stop = False
        #: evaluations the spline run spent on its stop rule's checks away from the best
        self.checks = 0

    def __call__(self, x: Sequence[float]) -> float:
        key = tuple(int(round(float(v))) for v in x)
        if len(key) != self.problem.d or any(
            not lo <= v <= hi
            for v, lo, hi in zip(key, self.problem.lows, self.problem.highs, strict=True)
        ):
            raise ValueError(f"{self.problem.name}: point {key} is outside the integer box")
        if self.calls >= CALL_CAP * self.budget:
            raise BudgetSpent
        self.calls += 1
        if key in self.cache:
            return self.cache[key]
        if len(self.true) >= self.budget:
            raise BudgetSpent
        value = self.problem(key)
        self.true.append(value)
        self.cache[key] = value + self.noise_sd * float(self.rng.standard_normal())
        self.points.append(key)
        self.measured.append(self.cache[key])
        return self.cache[key]


# ------------------------------------------------------------------------------- methods


def _random(problem: Problem, ev: Evaluator, seed: int) -> None:
    rng = np.random.default_rng(seed)
    while True:
        ev(
            [
                int(rng.integers(lo, hi + 1))
                for lo, hi in zip(problem.lows, problem.highs, strict=True)
            ]
        )


#: Stopping tolerance of the spline runs, as a fraction of the loss range.
TOLERANCE_FRACTION = 5e-3


def spline_optimizer(
    problem: Problem,
    seed: int,
    strategy: str = "default",
    q: int = 1,
    noise: float | str | None = None,
    checks: bool = True,
    check_order: str | None = None,
    head_weight: float | None = None,
    **chosen: Any,
):
    """The spline optimiser on ``problem``'s integer box, minimising, with the benchmark's tolerance.

    ``chosen``: further :class:`~nas.search.settings.SearchSettings` fields (``design``,
    ``batch_fill``, ``capping``, ``warping``, ``categories``); a field that is absent or
    None keeps its default. ``head_weight``: the default strategy's ``batch_head_weight``
    (unset: its default).
    """
    from nas.search.optimizer import SplineOptimizer
    from nas.search.settings import SearchSettings
    from nas.search.space import Dim, SearchSpace

    dims = [
        Dim(n, "categorical", choices=tuple(range(lo, hi + 1)))
        if i in problem.categorical
        else Dim(n, "int", lo, hi)
        for i, (n, lo, hi) in enumerate(
            zip(variable_names(problem), problem.lows, problem.highs, strict=True)
        )
    ]
    settings = SearchSettings(
        batch_size=q,
        seed=seed,
        goal="minimize",
        strategy=strategy,
        tolerance=TOLERANCE_FRACTION * problem.span,
        noise=noise,
        **{key: value for key, value in chosen.items() if value is not None},
    )
    if not checks:
        opt = _without_checks()(SearchSpace(dims), settings)
    elif check_order is not None:
        opt = _with_checks(check_order)(SearchSpace(dims), settings)
    else:
        opt = SplineOptimizer(SearchSpace(dims), settings)
    if head_weight is not None:
        opt.strategy = dataclasses.replace(opt.strategy, batch_head_weight=head_weight)
    return opt


def _check_orders() -> dict[str, tuple]:
    """Alternative orders of condition (e)'s checks, compared with the default's in
    ``results/stop_rule.md``: the axis check by value alone (the default until
    2026-12-06), and both axis checks."""
    from nas.search.exploration import NEIGHBOURHOOD_SPREAD, AlongAxes, AwayFromBest

    far, around = AwayFromBest(), AwayFromBest(spread=NEIGHBOURHOOD_SPREAD, weight=1.0)
    by_value, by_merit = AlongAxes(weight=1.0), AlongAxes()  # by merit: the default weight
    return {
        # the axis check by value instead of by merit of value and distance
        "axes-value": (far, by_value, around),
        # both axis checks, the merit one instead of the neighbourhood check
        "axes-both": (far, by_value, by_merit),
    }


def _with_checks(order: str) -> type:
    """The optimizer with condition (e)'s checks in another order (as many as the default's)."""
    from nas.search.exploration import CHECK_ORDER
    from nas.search.optimizer import SplineOptimizer

    checks = _check_orders()[order]
    assert len(checks) == len(CHECK_ORDER)

    class OtherChecks(SplineOptimizer):
        def _check_strategies(self, room: int):
            return [
                checks[CHECK_ORDER.index(s)] if s in CHECK_ORDER else s
                for s in super()._check_strategies(room)
            ]

    return OtherChecks


def _without_checks() -> type:
    """The optimizer under the default rule as it was before condition (e): (a)-(d) stop it.

    For comparison only: no check away from the best is proposed, and the rule
    stops where it would have asked for the first one.
    """
    from nas.search.optimizer import SplineOptimizer

    class WithoutChecks(SplineOptimizer):
        def _wants_check(self) -> bool:
            return False

        def stop_evidence(self, rule: str | None = None):
            evidence = super().stop_evidence(rule)
            if not evidence.explore:
                return evidence
            return dataclasses.replace(evidence, stop=True, explore=False)

    return WithoutChecks


def variable_names(problem: Problem) -> list[str]:
    return [f"x{i}" for i in range(problem.d)]


def _spline(
    strategy: str,
    q: int,
    noise: str | None = None,
    checks: bool = True,
    check_order: str | None = None,
    head_weight: float | None = None,
    **chosen: Any,
) -> Runner:
    """A spline run; ``noise`` is None, "auto" or "sd" (the evaluator's true sd).

    ``chosen``: settings passed on to :func:`spline_optimizer` (``design``,
    ``batch_fill``, ``capping``, ``warping``, ``categories``; unset: the defaults of
    :class:`~nas.search.settings.SearchSettings`). ``checks``: False runs the
    default rule without condition (e), as it was before (for comparison);
    ``check_order`` names another order of its checks (:func:`_check_orders`);
    ``head_weight`` the batch head's exploration weight (:func:`spline_optimizer`).
    """

    def run(problem: Problem, ev: Evaluator, seed: int) -> None:
        names = variable_names(problem)
        level = ev.noise_sd if noise == "sd" else noise
        opt = spline_optimizer(
            problem,
            seed,
            strategy,
            q,
            noise=level,
            checks=checks,
            check_order=check_order,
            head_weight=head_weight,
            **chosen,
        )
        try:
            while not (ev.to_stop and opt.stop in ev.stops):
                _one_batch(opt, ev, names)
                _note_stops(problem, opt, ev, names)
        finally:
            ev.returned = _true_of_best(problem, opt, names)

    return run


#: Origins of the evaluations a run spends looking before it stops (``ev.checks``): the stop
#: rule's checks and the climb's polls.
LOOKS = ("check", "poll")


def _one_batch(opt, ev: Evaluator, names: list[str]) -> None:
    """Ask the search for its next batch, measure it and tell it; count its checks."""
    batch = opt.suggest()
    values = [ev([p.params[n] for n in names]) for p in batch]
    for proposal, value in zip(batch, values, strict=True):
        opt.tell(proposal.params, value)
    ev.checks += sum(p.origin in LOOKS for p in batch)


def _pipeline(q: int) -> Runner:
    """The default search with ``q`` points always in flight, asked for one at a time.

    Workers that finish in the order they started: each time the oldest point's
    measurement comes back it is told and the search is asked for as many
    points as are then missing. The points still out are marked pending, so
    each new one continues their batch (``SplineOptimizer.suggest``). An
    evaluation counts when its point is issued, as in the batch runs.
    """
    from collections import deque

    def run(problem: Problem, ev: Evaluator, seed: int) -> None:
        names = variable_names(problem)
        opt = spline_optimizer(problem, seed, "default", q)
        flight: deque = deque()
        try:
            while not (ev.to_stop and opt.stop in ev.stops):
                for proposal in opt.suggest(q - len(flight)):  # as many as are missing
                    flight.append((proposal, ev([proposal.params[n] for n in names])))
                    opt.mark_pending(proposal.params)
                if not flight:
                    break
                proposal, value = flight.popleft()
                opt.tell(proposal.params, value)
                ev.checks += proposal.origin in LOOKS
                _note_stops(problem, opt, ev, names)
        finally:
            ev.returned = _true_of_best(problem, opt, names)

    return run


def _climb(q: int) -> Runner:
    """The search without the climb on a stall, its stop followed by a climb on the coarse axes.

    Measured before the climb on a stall (:mod:`nas.search.climb`) was the
    search's own, and run with ``climb = "off"`` as it was: when the default rule fires,
    the best measured point's one-level neighbours on every integer axis of at
    most :data:`~nas.search.climb.COARSE_LEVELS` levels are measured, ``q`` at a
    time. One that beats the best becomes the best and the climb goes on from
    it; the run stops, by the default rule, once no unmeasured neighbour of the
    best is left. The stop stands whatever the polls did to conditions
    (a)-(e). Polls count as checks (``ev.checks``). Without ``--to-stop`` the
    search goes on after the climb, to the budget.
    """

    def run(problem: Problem, ev: Evaluator, seed: int) -> None:
        names = variable_names(problem)
        opt = spline_optimizer(problem, seed, "default", q, climb="off")
        try:
            while not (ev.to_stop and "default" in ev.stops):
                _one_batch(opt, ev, names)
                _note_stops(problem, opt, ev, names, rules=("paper",))
                if "default" not in ev.stops and opt.stop_evidence("default").stop:
                    _climb_coarse(opt, ev, names, q)
                    ev.stops["default"] = (len(ev.true), _true_of_best(problem, opt, names))
        finally:
            ev.returned = _true_of_best(problem, opt, names)

    return run


def _climb_coarse(opt, ev: Evaluator, names: list[str], q: int) -> None:
    """Poll the best's one-level neighbours on the coarse axes (:func:`nas.search.climb.polls_due`),
    ``q`` at a time, until none is left unmeasured; one measured better than the best becomes
    the one polled around."""
    from nas.search.climb import polls_due

    while True:
        known = {opt.space.key(r.params) for r in opt.history}
        todo = polls_due(opt.space, opt.best[0], known)
        if not todo:
            return
        for params in todo[:q]:
            opt.tell(params, ev([params[n] for n in names]))
            ev.checks += 1


def _true_of_best(problem: Problem, opt, names: list[str]) -> float | None:
    best = opt.best
    return None if best is None else problem(tuple(best[0][n] for n in names))


def _note_stops(
    problem: Problem, opt, ev: Evaluator, names: list[str], rules: Sequence[str] | None = None
) -> None:
    """Record where Algorithm 1's stop and the default stop would first have ended the run.

    The evidence is the optimizer's own (:meth:`SplineOptimizer.stop_evidence`),
    applied with either rule (``rules``: only these).
    """
    from nas.search.stopping import STOP_RULES

    for rule in STOP_RULES if rules is None else rules:
        if rule not in ev.stops and opt.stop_evidence(rule).stop:
            ev.stops[rule] = (len(ev.true), _true_of_best(problem, opt, names))


def _optuna(kind: str) -> Runner:
    def run(problem: Problem, ev: Evaluator, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if kind == "tpe":
            sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed)
        else:
            sampler = optuna.samplers.GPSampler(seed=seed)
        study = optuna.create_study(sampler=sampler)
        while True:
            trial = study.ask()
            x = [
                trial.suggest_categorical(f"x{i}", list(range(lo, hi + 1)))
                if i in problem.categorical
                else trial.suggest_int(f"x{i}", lo, hi)
                for i, (lo, hi) in enumerate(zip(problem.lows, problem.highs, strict=True))
            ]
            study.tell(trial, ev(x))

    return run


def _skopt(problem: Problem, ev: Evaluator, seed: int) -> None:
    from skopt import gp_minimize
    from skopt.space import Categorical, Integer

    dims = [
        Categorical(list(range(lo, hi + 1))) if i in problem.categorical else Integer(lo, hi)
        for i, (lo, hi) in enumerate(zip(problem.lows, problem.highs, strict=True))
    ]
    gp_minimize(ev, dims, n_calls=CALL_CAP * ev.budget, random_state=seed)


def _pysot(kind: str) -> Runner:
    def run(problem: Problem, ev: Evaluator, seed: int) -> None:
        from poap.controller import SerialController
        from pySOT.experimental_design import SymmetricLatinHypercube
        from pySOT.optimization_problems import OptimizationProblem
        from pySOT.strategy import DYCORSStrategy, SRBFStrategy
        from pySOT.surrogate import CubicKernel, LinearTail, RBFInterpolant

        class Box(OptimizationProblem):
            """The integer box; a categorical dimension is an integer coordinate (no type in pySOT)."""

            def __init__(self) -> None:
                self.dim, self.lb = problem.d, np.array(problem.lows, float)
                self.ub = np.array(problem.highs, float)
                self.int_var, self.cont_var = np.arange(problem.d), np.array([], dtype=int)

            def eval(self, x: np.ndarray) -> float:
                return ev(x)

        d, box = problem.d, Box()
        np.random.seed(seed)  # pySOT draws from numpy's global generator only
        surrogate = RBFInterpolant(d, box.lb, box.ub, kernel=CubicKernel(), tail=LinearTail(d))
        design = SymmetricLatinHypercube(dim=d, num_pts=2 * (d + 1))
        cls = DYCORSStrategy if kind == "dycors" else SRBFStrategy
        controller = SerialController(objective=ev)
        controller.strategy = cls(
            max_evals=ev.budget, opt_prob=box, exp_design=design, surrogate=surrogate
        )
        controller.run()

    return run


#: name -> (runner, module that must import for it to run).
METHODS: dict[str, tuple[Runner, str]] = {
    "default": (_spline("default", 1), "nas.search.optimizer"),
    "default-q4": (_spline("default", 4), "nas.search.optimizer"),
    "default-cap": (_spline("default", 1, capping=MEASURED_CAPPING), "nas.search.optimizer"),
    "default-cap-q4": (_spline("default", 4, capping=MEASURED_CAPPING), "nas.search.optimizer"),
    "default-nowarp": (_spline("default", 1, warping="off"), "nas.search.optimizer"),
    "default-nowarp-q4": (_spline("default", 4, warping="off"), "nas.search.optimizer"),
    "default-nowarp-auto": (
        _spline("default", 1, noise="auto", warping="off"),
        "nas.search.optimizer",
    ),
    "default-corners": (_spline("default", 1, design="corners"), "nas.search.optimizer"),
    "default-corners-q4": (_spline("default", 4, design="corners"), "nas.search.optimizer"),
    "default-dycors-q4": (_spline("default", 4, batch_fill="dycors"), "nas.search.optimizer"),
    "default-merit-q4": (_spline("default", 4, batch_fill="merit"), "nas.search.optimizer"),
    "default-believer-q4": (_spline("default", 4, batch_fill="believer"), "nas.search.optimizer"),
    "default-liar-q4": (_spline("default", 4, batch_fill="liar"), "nas.search.optimizer"),
    "default-pipeline-q4": (_pipeline(4), "nas.search.optimizer"),
    # a spline per category (Algorithm 1's model) with today's design and checks
    "default-separate": (_spline("default", 1, categories="separate"), "nas.search.optimizer"),
    "default-separate-q4": (_spline("default", 4, categories="separate"), "nas.search.optimizer"),
    "default-separate-axes-value": (
        _spline("default", 1, check_order="axes-value", categories="separate"),
        "nas.search.optimizer",
    ),
    "default-head70-q4": (_spline("default", 4, head_weight=0.7), "nas.search.optimizer"),
    "default-climb": (_climb(1), "nas.search.optimizer"),
    "default-climb-q4": (_climb(4), "nas.search.optimizer"),
    # the search before the climb on a stall (nas.search.climb)
    "default-noclimb": (_spline("default", 1, climb="off"), "nas.search.optimizer"),
    "default-noclimb-q4": (_spline("default", 4, climb="off"), "nas.search.optimizer"),
    "default-auto-noclimb": (
        _spline("default", 1, noise="auto", climb="off"),
        "nas.search.optimizer",
    ),
    "default-nocheck": (_spline("default", 1, checks=False), "nas.search.optimizer"),
    "default-corners-nocheck": (
        _spline("default", 1, design="corners", checks=False),
        "nas.search.optimizer",
    ),
    "default-axes-value": (
        _spline("default", 1, check_order="axes-value"),
        "nas.search.optimizer",
    ),
    "default-axes-both": (_spline("default", 1, check_order="axes-both"), "nas.search.optimizer"),
    "default-axes-value-q4": (
        _spline("default", 4, check_order="axes-value"),
        "nas.search.optimizer",
    ),
    "default-auto": (_spline("default", 1, noise="auto"), "nas.search.optimizer"),
    "default-sd": (_spline("default", 1, noise="sd"), "nas.search.optimizer"),
    "paper": (_spline("paper", 1), "nas.search.optimizer"),
    "paper-q4": (_spline("paper", 4), "nas.search.optimizer"),
    "random": (_random, "numpy"),
    "tpe": (_optuna("tpe"), "optuna"),
    "optuna-gp": (_optuna("gp"), "optuna"),
    "skopt-gp": (_skopt, "skopt"),
    "dycors": (_pysot("dycors"), "pySOT"),
    "srbf": (_pysot("srbf"), "pySOT"),
}
QUICK_METHODS = ("default", "paper", "random")


@cache
def _problem(name: str) -> Problem:
    return PROBLEMS[name]()


@dataclass(frozen=True)
class Task:
    method: str
    problem: str
    noisy: bool
    seed: int
    budget: int
    #: noise sd as a fraction of the loss range in noisy runs
    noise_fraction: float = NOISE_FRACTION

    to_stop: bool = False

    @property
    def key(self) -> str:
        base = f"{self.method}|{self.problem}|{noise_label(self.noisy, self.noise_fraction)}|{self.seed}|{self.budget}"
        return base + ("|to-stop" if self.to_stop else "")


def noise_label(noisy: bool, fraction: float = NOISE_FRACTION) -> str:
    """``exact``, ``noisy`` (the default level, as cached before levels existed) or ``noisy<fraction>``."""
    if not noisy:
        return "exact"
    return "noisy" if fraction == NOISE_FRACTION else f"noisy{fraction:g}"


def run_task(task: Task) -> dict:
    """One optimiser run; returns the noise-free trace and the optimiser's time per call."""
    problem = _problem(task.problem)
    ev = Evaluator(problem, task.budget, task.noisy, task.seed, task.noise_fraction)
    ev.to_stop = task.to_stop
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            METHODS[task.method][0](problem, ev, task.seed)
        except BudgetSpent:
            pass
    seconds = time.perf_counter() - start
    return {
        "key": task.key,
        "true": ev.true,
        "seconds_per_call": seconds / max(ev.calls, 1),
        "stops": ev.stops,
        "returned": ev.returned,
        "checks": ev.checks,
        "points": ev.points,
        "measured": ev.measured,
    }


# ------------------------------------------------------------------------------- metrics


def regret_curve(problem: Problem, true: Sequence[float], budget: int) -> np.ndarray:
    """Normalised regret of the best point after 1..budget evaluations (held after the end)."""
    curve = np.minimum.accumulate(np.asarray(true, dtype=float)) if true else np.array([np.inf])
    curve = np.concatenate([curve, np.full(budget - len(curve), curve[-1])])[:budget]
    return problem.regret(curve) if np.isfinite(curve).all() else np.ones(budget)


def evaluations_to(curves: np.ndarray, threshold: float) -> np.ndarray:
    """First evaluation count with regret <= threshold per run (inf when never)."""
    hit = curves <= threshold
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.inf)


def _fmt_count(counts: np.ndarray, budget: int) -> str:
    q1, med, q3 = np.percentile(counts, [25, 50, 75], method="lower")
    got = int(np.isfinite(counts).sum())

    def one(v: float) -> str:
        return f">{budget}" if not np.isfinite(v) else f"{v:.0f}"

    return f"{one(med)} [{one(q1)}-{one(q3)}] {got}/{len(counts)}"


def tables(runs: dict[str, dict], tasks: Sequence[Task]) -> str:
    """Markdown tables for the given tasks (grouped by problem and noise)."""
    if any(t.to_stop for t in tasks):
        return stop_tables(runs, tasks)
    methods = list(dict.fromkeys(t.method for t in tasks))
    groups = list(dict.fromkeys((t.problem, t.noisy) for t in tasks))
    budget = tasks[0].budget
    curves: dict[tuple[str, str, bool], np.ndarray] = {}
    secs: dict[tuple[str, str], list[float]] = {}
    for t in tasks:
        run = runs[t.key]
        curve = regret_curve(_problem(t.problem), run["true"], t.budget)
        curves.setdefault((t.method, t.problem, t.noisy), []).append(curve)
        secs.setdefault((t.method, t.problem), []).append(run["seconds_per_call"])
    n_seeds = len({t.seed for t in tasks})
    noisy = next((t for t in tasks if t.noisy), None)  # an exact-only table names no noise level
    out = [
        f"Budget {budget} distinct evaluations, {n_seeds} seeds; cells: median [IQR] and seeds "
        "that got there."
        + ("" if noisy is None else f" Noisy: sd = {noisy.noise_fraction:.1%} of the loss range.")
        + "\n"
    ]
    for threshold in (1e-2, 1e-3):
        out.append(f"\n### Evaluations to {threshold:.1%} regret\n")
        out.append(_row(["problem", *methods]) + "\n" + _row(["---"] * (len(methods) + 1)))
        for prob, noisy in groups:
            cells = [
                _fmt_count(evaluations_to(np.array(curves[(m, prob, noisy)]), threshold), budget)
                for m in methods
            ]
            out.append(_row([_label(prob, noisy), *cells]))
    d_of = {p: _problem(p).d for p, _ in groups}
    out.append("\n### Median regret (%) after 2d+3, +5, +10, +20 evaluations\n")
    out.append(_row(["problem", *methods]) + "\n" + _row(["---"] * (len(methods) + 1)))
    for prob, noisy in groups:
        marks = [n for n in (2 * d_of[prob] + 3 + k for k in (0, 5, 10, 20)) if n <= budget]
        cells = []
        for m in methods:
            med = np.median(np.array(curves[(m, prob, noisy)])[:, np.array(marks) - 1], axis=0)
            cells.append(" / ".join(f"{100 * v:.2g}" for v in med))
        out.append(_row([f"{_label(prob, noisy)} (n={','.join(map(str, marks))})", *cells]))
    out.extend(_ratio_table(methods, groups, curves, budget))
    out.extend(_summary_tables(runs, tasks, methods, groups, curves))
    out.extend(_stop_table(runs, tasks, methods, groups))
    out.extend(_headroom_table(runs, tasks, methods, groups, curves))
    out.append("\n### Seconds per proposal (median over runs)\n")
    problems = list(dict.fromkeys(p for p, _ in groups))
    out.append(_row(["method", *problems]) + "\n" + _row(["---"] * (len(problems) + 1)))
    for m in methods:
        out.append(_row([m, *(f"{np.median(secs[(m, p)]):.3g}" for p in problems)]))
    return "\n".join(out) + "\n"


#: The acceptance thresholds: q = 1 against the best peer, q = 4 against q = 1 (to 1 %).
PEER_RATIO, BATCH_RATIO = 0.8, 1.2


def _median_count(c: np.ndarray, threshold: float = 1e-2) -> float:
    return float(np.percentile(evaluations_to(c, threshold), 50, method="lower"))


def _ratio(a: float, b: float, budget: int) -> str:
    """a / b of two median counts, where either may be "more than the budget" (inf)."""
    if not np.isfinite(a) and not np.isfinite(b):
        return "- (neither)"
    if not np.isfinite(a):
        return f">{budget / b:.2f}"
    if not np.isfinite(b):
        return f"<{a / budget:.2f}"
    return f"{a / b:.2f}"


def _single(method: str) -> str:
    """The q = 1 method of a batch method: same strategy and design, no fill named."""
    base = method.removesuffix("-q4").removesuffix("-pipeline")
    for fill in BATCH_FILLS:
        base = base.removesuffix(f"-{fill}")
    return base


def _ratio_table(methods: list[str], groups: list, curves: dict, budget: int) -> list[str]:
    """Per problem: each spline method's median evaluations to 1 % over the best peer's, and
    each ``X-q4`` over ``X`` (the targets: at most 0.8 and 1.2)."""
    peers = [m for m in methods if own_rule(m) is None and m != "random"]
    spline = [m for m in methods if own_rule(m) is not None]
    pairs = [(m, _single(m)) for m in spline if m.endswith("-q4") and _single(m) in spline]
    if not (peers and spline) and not pairs:
        return []
    header = ["problem", "best peer"] if peers else ["problem"]
    header += [f"{m} / peer" for m in spline if peers] + [f"{a} / {b}" for a, b in pairs]
    out = [
        f"\n### Ratios of median evaluations to 1 % regret (targets: <= {PEER_RATIO} of the best "
        f"peer, q = 4 <= {BATCH_RATIO} of q = 1)\n",
        "`>x`: the first never got there within the budget (x is a lower bound); `<x`: the second "
        "never did (an upper bound).\n",
        _row(header),
        _row(["---"] * len(header)),
    ]
    for prob, noisy in groups:
        med = {m: _median_count(np.array(curves[(m, prob, noisy)])) for m in methods}
        cells = [_label(prob, noisy)]
        if peers:
            best = min(peers, key=lambda m: med[m])
            shown = f">{budget}" if not np.isfinite(med[best]) else f"{med[best]:.0f}"
            cells.append(f"{shown} ({best})")
            cells += [_ratio(med[m], med[best], budget) for m in spline]
        cells += [_ratio(med[a], med[b], budget) for a, b in pairs]
        out.append(_row(cells))
    return out


def own_rule(method: str) -> str | None:
    """The stop rule a spline method applies to itself (None for peers: they run to the budget)."""
    if METHODS[method][1] != "nas.search.optimizer":
        return None
    return method.split("-")[0]


def final_regret(problem: Problem, run: dict) -> float:
    """Regret of the point the method returns: its own pick, else the best it evaluated."""
    if run.get("returned") is not None:
        return problem.regret(run["returned"])
    return problem.regret(min(run["true"])) if run["true"] else 1.0


#: A stop is too early when the point it returns has more than this regret (1 % of the range).
TOO_EARLY_REGRET = 1e-2


def early_stop(problem: Problem, loss: float) -> bool:
    """Whether a stop that returned a point of noise-free ``loss`` came too early."""
    return problem.regret(loss) > TOO_EARLY_REGRET


def too_early(problem: Problem, method: str, run: dict) -> bool | None:
    """Whether the method's own stop rule fired with the returned point above 1 % regret."""
    rule = own_rule(method)
    if rule is None:
        return None
    stop = run.get("stops", {}).get(rule)
    return stop is not None and early_stop(problem, stop[1])


def _summary_tables(
    runs: dict[str, dict], tasks: Sequence[Task], methods: list[str], groups: list, curves: dict
) -> list[str]:
    """Per problem and across all problems: evaluations to 1 % / 0.1 %, final regret, too early."""
    budget = tasks[0].budget
    header = ["to 1 %", "to 0.1 %", "final regret % (median, max)", "own stop: fired", "too early"]
    per_problem = [
        "\n### Summary per problem and method\n",
        "Evaluations to a regret: median and seeds that got there. Final regret: of the point the "
        "method returns after the whole budget (spline: its `best`; peers: the best evaluated). "
        "Own stop: runs whose own stop rule (`default` or `paper`) fired within the budget; "
        "**too early**: runs whose own rule fired while the point they would have returned "
        "had regret > 1 % (of all runs; peers have no stop rule: -).\n",
        _row(["problem", "method", *header]),
        _row(["---"] * (len(header) + 2)),
    ]
    pooled: dict[str, dict[str, list]] = {m: {"c": [], "runs": []} for m in methods}
    for prob, noisy in groups:
        problem = _problem(prob)
        for m in methods:
            c = np.array(curves[(m, prob, noisy)])
            done = _runs_of(runs, tasks, m, prob, noisy)
            pooled[m]["c"].append(c)
            pooled[m]["runs"] += [(problem, r) for r in done]
            per_problem.append(
                _row([_label(prob, noisy), m, *_summary_cells(m, c, done, problem, budget)])
            )
    across = [
        "\n### Across all problems above\n",
        "Every run of every problem pooled (same seeds and problems for each method): evaluations "
        "to a regret as the median over all runs (a run that never got there counts as more than "
        "the budget) and runs that got there.\n",
        _row(["method", *header]),
        _row(["---"] * (len(header) + 1)),
    ]
    for m in methods:
        c = np.vstack(pooled[m]["c"])
        cells = []
        for threshold in (1e-2, 1e-3):
            counts = evaluations_to(c, threshold)
            cells.append(_fmt_median(counts, budget))
        cells += _stop_cells(m, pooled[m]["runs"])
        across.append(_row([m, *cells]))
    return per_problem + across


def _fmt_median(counts: np.ndarray, budget: int) -> str:
    med = float(np.percentile(counts, 50, method="lower"))  # as _fmt_count: a run's count
    shown = f">{budget}" if not np.isfinite(med) else f"{med:.0f}"
    return f"{shown} ({int(np.isfinite(counts).sum())}/{len(counts)})"


def _summary_cells(
    method: str, c: np.ndarray, done: list[dict], problem: Problem, budget: int
) -> list[str]:
    cells = [_fmt_median(evaluations_to(c, t), budget) for t in (1e-2, 1e-3)]
    return cells + _stop_cells(method, [(problem, r) for r in done])


def _stop_cells(method: str, done: list[tuple[Problem, dict]]) -> list[str]:
    """Final regret (median, max), own-stop count and too-early count over ``done`` runs."""
    final = [100 * final_regret(problem, r) for problem, r in done]
    cells = [f"{np.median(final):.2g}, {max(final):.2g}"]
    rule = own_rule(method)
    if rule is None:
        return [*cells, "-", "-"]
    fired = sum(rule in r.get("stops", {}) for _, r in done)
    early = sum(bool(too_early(problem, method, r)) for problem, r in done)
    return [*cells, f"{fired}/{len(done)}", f"{early}/{len(done)}"]


def _stop_table(
    runs: dict[str, dict], tasks: Sequence[Task], methods: list[str], groups: list
) -> list[str]:
    """Where each stop rule would have ended the spline runs, and how often too early."""
    spline = [
        m
        for m in methods
        if any(runs[t.key].get("stops") is not None for t in tasks if t.method == m)
    ]
    spline = [m for m in spline if METHODS[m][1] == "nas.search.optimizer"]
    if not spline:
        return []
    out = [
        f"\n### Stopping (tolerance {TOLERANCE_FRACTION:.1%} of the range)\n",
        "Per stop rule: runs that stopped within the budget, median evaluation at the stop, and "
        "**too early** = stopped with the returned point's regret > 1 % (of all runs). "
        "Last column: median regret (%) of the point returned at the end of the budget.\n",
        _row(["problem", "method", "paper: stopped", "paper: too early", "default: stopped",
              "default: too early", "returned regret %"]),
        _row(["---"] * 7),
    ]  # fmt: skip
    for prob, noisy in groups:
        problem = _problem(prob)
        for m in spline:
            done = _runs_of(runs, tasks, m, prob, noisy)
            cells = []
            for rule in ("paper", "default"):
                stops = [r["stops"][rule] for r in done if rule in r["stops"]]
                at = f" at {np.median([n for n, _ in stops]):.0f}" if stops else ""
                early = sum(early_stop(problem, v) for _, v in stops)
                cells += [f"{len(stops)}/{len(done)}{at}", f"{early}/{len(done)}"]
            final = [problem.regret(r["returned"]) for r in done if r.get("returned") is not None]
            cells.append(f"{100 * np.median(final):.2g}" if final else "-")
            out.append(_row([_label(prob, noisy), m, *cells]))
    return out


def _headroom_table(
    runs: dict[str, dict], tasks: Sequence[Task], methods: list[str], groups: list, curves: dict
) -> list[str]:
    """How many runs the default rule could stop right at most, and where its stops lag.

    A rule that never stops too early can stop a run right only once the
    best measured point is within 1 % regret; the default rule also waits
    its stall window (condition (b), counted from the best's last rise) and
    then three checks (e). So a run whose best first came within 1 % later
    than ``budget - window - CHECKS_NEEDED`` has no room for the rule's
    evidence before the budget, whatever the rule's other conditions say:
    these counts bound the stopping rate a rule with the same evidence can
    reach on a problem, and separate a search that is slow to get there
    from a rule that is slow to see it (the last column).
    """
    spline = [m for m in methods if own_rule(m) == "default"]
    if not spline:
        return []
    budget = tasks[0].budget
    out = [
        "\n### Room for the default rule's evidence\n",
        "Per problem: runs that evaluated a point within 1 % regret (noise-free) by the budget (no "
        "rule that never stops too early can stop more), and by the budget less the stall window "
        f"of condition (b) and the {CHECKS_NEEDED} checks (the least the default rule waits after "
        "the best's last rise: room for its evidence; batches carry their checks in one round, "
        "so for them it is a little strict); the runs the rule stopped right (within 1 %); and "
        "the median evaluations from the first within 1 % to the stop, over those runs.\n",
        _row(["problem", "method", "within 1 % by the budget", "with room for the evidence",
              "default: stopped right", "within 1 % to the stop (median)"]),
        _row(["---"] * 6),
    ]  # fmt: skip
    for prob, noisy in groups:
        problem = _problem(prob)
        room = budget - stall_needed(problem.d) - CHECKS_NEEDED
        for m in spline:
            done = _runs_of(runs, tasks, m, prob, noisy)
            first = evaluations_to(np.array(curves[(m, prob, noisy)]), TOO_EARLY_REGRET)
            right = [  # the rule fired, and not too early
                (n, r["stops"]["default"][0])
                for r, n in zip(done, first, strict=True)
                if "default" in r.get("stops", {}) and not too_early(problem, m, r)
            ]
            lag = f"{np.median([at - n for n, at in right]):.0f}" if right else "-"
            cells = [
                f"{int(np.isfinite(first).sum())}/{len(done)}",
                f"{int((first <= room).sum())}/{len(done)}",
                f"{len(right)}/{len(done)}",
                lag,
            ]
            out.append(_row([_label(prob, noisy), m, *cells]))
    return out


def stop_tables(runs: dict[str, dict], tasks: Sequence[Task]) -> str:
    """Where each spline run stopped by its own rule, per problem and pooled (``--to-stop``).

    Peers have no stop rule and are left out.
    """
    tasks = [t for t in tasks if t.to_stop]
    budget = tasks[0].budget
    header = ["problem", "method", "stopped before the budget", "median evaluation at the stop",
              "too early", "regret % at the stop (median, max)", "checks per run (median, max)",
              "final regret % (median, max)"]  # fmt: skip
    out = [
        f"Own stop rule, tolerance {TOLERANCE_FRACTION:.1%} of the range, budget {budget}; "
        "**too early**: stopped while the returned point had regret > 1 %. Checks: evaluations "
        "the default rule spent away from the best (condition (e)). Final regret: of the point "
        "returned where the run ended (at its stop, else at the budget).\n",
        _row(header),
        _row(["---"] * len(header)),
    ]
    pooled: dict[str, list[tuple[Problem, dict]]] = {}
    for prob, noisy, m in dict.fromkeys((t.problem, t.noisy, t.method) for t in tasks):
        problem = _problem(prob)
        done = _runs_of(runs, tasks, m, prob, noisy)
        pooled.setdefault(m, []).extend((problem, r) for r in done)
        out.append(_row([_label(prob, noisy), m, *_stop_summary(m, [(problem, r) for r in done])]))
    out += [
        "\nPooled over the problems above:\n",
        _row(header[1:]),
        _row(["---"] * (len(header) - 1)),
    ]
    out += [_row([m, *_stop_summary(m, done)]) for m, done in pooled.items()]
    return "\n".join(out) + "\n"


def _stop_summary(method: str, done: list[tuple[Problem, dict]]) -> list[str]:
    """The cells of :func:`stop_tables` for ``done`` runs of ``method``."""
    rule = own_rule(method)
    stops = [(problem, r["stops"][rule]) for problem, r in done if rule in r.get("stops", {})]
    at = f"{np.median([n for _, (n, _) in stops]):.0f}" if stops else "-"
    regrets = [100 * problem.regret(v) for problem, (_, v) in stops]
    early = sum(early_stop(problem, v) for problem, (_, v) in stops)
    checks = [r.get("checks", 0) for _, r in done]
    final = [100 * final_regret(problem, r) for problem, r in done]
    return [
        f"{len(stops)}/{len(done)}",
        at,
        f"{early}/{len(done)}",
        f"{np.median(regrets):.2g}, {max(regrets):.2g}" if regrets else "-",
        f"{np.median(checks):.0f}, {max(checks)}",
        f"{np.median(final):.2g}, {max(final):.2g}",
    ]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _runs_of(
    runs: dict[str, dict], tasks: Sequence[Task], method: str, problem: str, noisy: bool
) -> list[dict]:
    """The runs of ``method`` on ``problem`` (exact or noisy), in the order of ``tasks``."""
    return [
        runs[t.key] for t in tasks if (t.method, t.problem, t.noisy) == (method, problem, noisy)
    ]


def _label(problem: str, noisy: bool) -> str:
    return f"{problem}{' noisy' if noisy else ''}"


# ----------------------------------------------------------------------------------- CLI


def available(methods: Sequence[str]) -> list[str]:
    """The methods whose modules import; the others are named on stderr."""
    import importlib

    ok = []
    for m in methods:
        try:
            importlib.import_module(METHODS[m][1])
        except ImportError as exc:
            print(f"skipping {m}: {exc}", file=sys.stderr)
        else:
            ok.append(m)
    return ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="CI-sized: nas5 and branin, 3 seeds, budget 40"
    )
    p.add_argument("--methods", help=f"comma list from {', '.join(METHODS)}")
    p.add_argument("--problems", help=f"comma list from {', '.join(PROBLEMS)}")
    p.add_argument("--noise", choices=("both", "exact", "noisy"), default="both")
    p.add_argument(
        "--noise-fraction",
        type=float,
        default=NOISE_FRACTION,
        help=f"noise sd of noisy runs as a fraction of the loss range (default {NOISE_FRACTION})",
    )
    p.add_argument("--seeds", type=int, help="number of seeds (default 10, quick 3)")
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds are FIRST_SEED, FIRST_SEED + 1, ... (default 0): a cache made with "
        "--seeds 20 renders seeds 10-19 alone with --seeds 10 --first-seed 10",
    )
    p.add_argument(
        "--budget", type=int, help="distinct evaluations per run (default 100, quick 40)"
    )
    p.add_argument("--workers", type=int, default=2, help="processes (at most 2)")
    p.add_argument("--raw", type=Path, help="JSON file of finished runs to reuse and extend")
    p.add_argument("--out", type=Path, help="also write the markdown tables here")
    p.add_argument(
        "--to-stop", action="store_true", help="end each spline run where its own stop rule fires"
    )
    args = p.parse_args(argv)
    args.methods = _choose(
        args.methods, METHODS, QUICK_METHODS if args.quick else tuple(METHODS), p
    )
    args.problems = _choose(
        args.problems, PROBLEMS, ("nas5", "branin") if args.quick else tuple(PROBLEMS), p
    )
    args.seeds = args.seeds or (3 if args.quick else 10)
    args.budget = args.budget or (40 if args.quick else 100)
    if not 0.0 < args.noise_fraction < 1.0:
        p.error(f"--noise-fraction must lie in (0, 1), got {args.noise_fraction}")
    if args.first_seed < 0:
        p.error(f"--first-seed must be >= 0, got {args.first_seed}")
    if not 1 <= args.workers <= 2:
        p.error(f"--workers must be 1 or 2, got {args.workers}")
    return args


def _choose(
    text: str | None, known: dict, default: tuple[str, ...], p: argparse.ArgumentParser
) -> list[str]:
    names = text.split(",") if text else list(default)
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"unknown name(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    noises = {"both": (False, True), "exact": (False,), "noisy": (True,)}[args.noise]
    tasks = [
        Task(
            m,
            prob,
            noisy,
            seed,
            args.budget,
            args.noise_fraction,
            args.to_stop and own_rule(m) is not None,
        )
        for prob in args.problems
        for noisy in noises
        for m in available(args.methods)
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    runs: dict[str, dict] = (
        json.loads(args.raw.read_text()) if args.raw and args.raw.exists() else {}
    )
    todo = [t for t in tasks if t.key not in runs]
    print(f"{len(todo)} runs to do, {len(tasks) - len(todo)} reused", file=sys.stderr)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for i, result in enumerate(pool.imap_unordered(run_task, todo), 1):
            runs[result["key"]] = result
            if args.raw and (i % 20 == 0 or i == len(todo)):
                args.raw.write_text(json.dumps(runs))
            print(f"\r{i}/{len(todo)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    emit(tables(runs, tasks), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
