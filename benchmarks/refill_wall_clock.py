"""Wall-clock time to a regret: whole batches against refilled slots (``[experiment] refill``).

A campaign of ``q`` concurrent trainings either waits for every point of a
batch before it proposes the next (the default) or, with ``refill = true``,
proposes one point each time a spline proposal finishes, so ``q`` train at
all times after the design. Sample efficiency alone cannot tell them apart
(``results/batch_fill.md``, "Four points always in flight"); what a refill
buys is GPUs that do not wait for a batch's slowest training.

The simulation replays both controllers on the NAS-shaped problems of
``problems.py`` with ``q`` workers:

* a point trains for a time proportional to its multiply-accumulates
  (:func:`tradeoff.cost_of`, the analytic GMACs of the network it stands
  for), in units of the median over the box, times a log-normal factor
  ``exp(jitter * z - jitter**2 / 2)`` drawn per point and seed (node speed,
  I/O, restarts: what makes two equal networks finish apart); the same
  point takes the same time in both modes;
* the design is one batch, spread over the ``q`` workers, and waited for in
  both modes, as the controller does;
* whole batches: ``q`` proposals, all started together, the next batch when
  the last has finished; refill: a point finishes, it is told, and the
  search is asked for as many as are missing, the points still out marked
  pending (the controller's :func:`nas.control.plan.free_slots`);
* the runs go to the budget of issued evaluations (no stop rule).

Per problem: the median time at which 1 % regret was first measured, the
median evaluations to it and the seeds that got there, and the share of
GPU time busy after the design (trained time / (q x elapsed)).

Usage::

    python benchmarks/refill_wall_clock.py --problems nas5,nas8c --seeds 10 --jitter 0.3 \\
        --raw /tmp/refill.json --out refill.md
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS, Problem  # noqa: E402
from reporting import emit  # noqa: E402
from sample_efficiency import spline_optimizer, variable_names  # noqa: E402
from tradeoff import cost_of  # noqa: E402

MODES = ("batches", "refill")
#: Problems whose points have a network cost (the NAS-shaped ones without a categorical block).
NAS_PROBLEMS = ("nas5", "nas8", "nas8i", "nas8h", "nas8c")


class Durations:
    """Training time of a point: its GMACs over the box's median, times a seeded log-normal factor."""

    def __init__(self, problem: Problem, seed: int, jitter: float) -> None:
        self.cost = cost_of(problem)
        rng = np.random.default_rng(12345)
        box = np.column_stack(
            [
                rng.integers(lo, hi + 1, 4096)
                for lo, hi in zip(problem.lows, problem.highs, strict=True)
            ]
        )
        self.unit = float(np.median(self.cost(box)))
        self.seed, self.jitter = seed, jitter

    def __call__(self, x: Sequence[int]) -> float:
        z = np.random.default_rng([self.seed, *map(int, x)]).standard_normal()
        factor = np.exp(self.jitter * z - self.jitter**2 / 2)
        return float(self.cost(np.array([x]))[0] / self.unit * factor)


def simulate(name: str, seed: int, mode: str, q: int, budget: int, jitter: float) -> dict:
    """One campaign; returns its (finish time, regret of the best so far) trace and busy share."""
    problem = PROBLEMS[name]()
    names = variable_names(problem)
    duration = Durations(problem, seed, jitter)
    opt = spline_optimizer(problem, seed, "default", q)
    finished: list[tuple[float, float]] = []  # (time, true loss), in finishing order

    def point(proposal) -> list[int]:
        return [int(proposal.params[n]) for n in names]

    design = opt.suggest(len(opt.initial_design()))
    free = [0.0] * q
    ends = []
    for proposal in design:
        worker = int(np.argmin(free))
        free[worker] += duration(point(proposal))
        ends.append((free[worker], proposal))
    for end, proposal in sorted(ends, key=lambda e: e[0]):
        value = problem(tuple(point(proposal)))
        opt.tell(proposal.params, value)
        finished.append((end, value))
    start = now = max(free)
    issued, trained = len(design), 0.0
    if mode == "batches":
        while issued < budget:
            batch = opt.suggest(min(q, budget - issued))
            issued += len(batch)
            ends = [(now + duration(point(p)), p) for p in batch]
            trained += sum(end - now for end, _ in ends)
            for end, proposal in sorted(ends, key=lambda e: e[0]):
                value = problem(tuple(point(proposal)))
                opt.tell(proposal.params, value)
                finished.append((end, value))
            now = max(end for end, _ in ends)
    else:
        flight: list = []
        while True:
            for proposal in (
                opt.suggest(min(q - len(flight), budget - issued)) if issued < budget else []
            ):
                issued += 1
                took = duration(point(proposal))
                trained += took
                heapq.heappush(flight, (now + took, issued, proposal))
                opt.mark_pending(proposal.params)
            if not flight:
                break
            now, _, proposal = heapq.heappop(flight)
            value = problem(tuple(point(proposal)))
            opt.tell(proposal.params, value)
            finished.append((now, value))
    best = np.minimum.accumulate([v for _, v in finished])
    return {
        "times": [t for t, _ in finished],
        "regret": [float(problem.regret(b)) for b in best],
        "busy": trained / (q * (now - start)) if now > start else 1.0,
    }


def _task(args: tuple) -> tuple[str, dict]:
    name, seed, mode, q, budget, jitter = args
    return _key(*args), simulate(name, seed, mode, q, budget, jitter)


def _key(name: str, seed: int, mode: str, q: int, budget: int, jitter: float) -> str:
    return f"{name}|{seed}|{mode}|q{q}|{budget}|jitter{jitter:g}"


def _first(run: dict, threshold: float) -> tuple[float, int] | None:
    for i, (t, r) in enumerate(zip(run["times"], run["regret"], strict=True)):
        if r <= threshold:
            return t, i + 1
    return None


def table(
    runs: dict, problems: Sequence[str], seeds: int, q: int, budget: int, jitter: float
) -> str:
    """Markdown: per problem and mode, time and evaluations to 1 % regret, busy share."""
    lines = [
        f"q = {q}, budget {budget}, {seeds} seeds, jitter {jitter:g}; time in median trainings. "
        "Time and evaluations to 1 % regret: median over the seeds that got there.",
        "",
        "| problem | mode | time to 1 % | evaluations to 1 % | seeds | GPU busy after the design |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in problems:
        for mode in MODES:
            done = [runs[_key(name, s, mode, q, budget, jitter)] for s in range(seeds)]
            hits = [h for h in (_first(r, 1e-2) for r in done) if h is not None]
            time_ = f"{np.median([h[0] for h in hits]):.1f}" if hits else "-"
            evals = f"{np.median([h[1] for h in hits]):.0f}" if hits else "-"
            busy = np.median([r["busy"] for r in done])
            lines.append(
                f"| {name} | {mode} | {time_} | {evals} | {len(hits)}/{seeds} | {busy:.0%} |"
            )
    lines += ["", _pooled(runs, problems, seeds, q, budget, jitter)]
    return "\n".join(lines) + "\n"


def _pooled(
    runs: dict, problems: Sequence[str], seeds: int, q: int, budget: int, jitter: float
) -> str:
    """One line over every problem and seed: paired refill/batches time ratios, pooled medians."""
    pairs, times = [], {mode: [] for mode in MODES}
    for name in problems:
        for seed in range(seeds):
            hit = {m: _first(runs[_key(name, seed, m, q, budget, jitter)], 1e-2) for m in MODES}
            for mode in MODES:
                times[mode].append(np.inf if hit[mode] is None else hit[mode][0])
            if None not in hit.values():
                pairs.append(hit["refill"][0] / hit["batches"][0])
    faster = sum(r < 1.0 for r in pairs)
    return (
        f"Pooled over {len(problems)} problems x {seeds} seeds: median time to 1 % "
        f"{np.median(times['batches']):.1f} (batches) against {np.median(times['refill']):.1f} "
        f"(refill); where both got there ({len(pairs)} runs) refill was faster in {faster}, "
        f"median ratio refill/batches {np.median(pairs):.2f}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", default=",".join(NAS_PROBLEMS))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--q", type=int, default=4)
    p.add_argument("--budget", type=int, default=80)
    p.add_argument("--jitter", type=float, default=0.3, help="sd of the log-normal time factor")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--raw", type=Path, help="JSON file of finished runs to reuse and extend")
    p.add_argument("--out", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    problems = args.problems.split(",")
    unknown = [n for n in problems if n not in NAS_PROBLEMS]
    if unknown:
        p.error(f"no network cost for {', '.join(unknown)}; choose from {', '.join(NAS_PROBLEMS)}")
    runs = json.loads(args.raw.read_text()) if args.raw and args.raw.exists() else {}
    tasks = [
        (n, s, m, args.q, args.budget, args.jitter)
        for n in problems
        for s in range(args.seeds)
        for m in MODES
        if _key(n, s, m, args.q, args.budget, args.jitter) not in runs
    ]
    print(f"{len(tasks)} runs to do", file=sys.stderr)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for i, (key, run) in enumerate(pool.imap_unordered(_task, tasks), 1):
            runs[key] = run
            print(f"\r{i}/{len(tasks)}", end="", file=sys.stderr, flush=True)
            if args.raw:
                args.raw.write_text(json.dumps(runs))
    print(file=sys.stderr)
    emit(table(runs, problems, args.seeds, args.q, args.budget, args.jitter), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
