"""Controller cycle time and state-file size against the number of points.

Run ``python benchmarks/controller_scale.py [--sizes 10 100 1000 10000]``;
prints a markdown table. Each state holds N measured points of a 3-dim box
(the search's own initial design, then uniform points) and
``max_concurrent_jobs`` jobs of the local backend whose ``[train] command``
only sleeps (no training). Columns:

``steady``
    median of 5 cycles while the jobs run: inbox, one batched status query,
    result files of idle points, one commit. The cycle a controller repeats
    for hours.
``first``
    the first cycle of a (re)started controller: also re-attaches every
    active job by name.
``propose``
    a cycle after the jobs ended: ingest their results, refit the spline
    on all N points, propose and submit the next batch (N <= 1000 only:
    the dense fit grows as N^3).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nas.cluster import LocalScheduler
from nas.config import Experiment, parse_experiment
from nas.control import policy
from nas.control.cycle import Controller
from nas.control.prepare import JobSettings
from nas.pointdir import layout
from nas.pointdir.result import Result, now_iso, write_result
from nas.record.state import PointStatus, State
from nas.record.store import StateStore

JOBS = 4
EXPERIMENT = """
[experiment]{extra}
name = "scale"
tolerance = 0.0
max_points = 1000000
batch_size = {jobs}
[[space]]
name = "a"
type = "float"
low = {low}
high = {high}
[[space]]
name = "b"
type = "float"
low = {low}
high = {high}
[[space]]
name = "c"
type = "float"
low = {low}
high = {high}
[train]
command = ["{command}"]
[cluster]
backend = "local"
max_concurrent_jobs = {jobs}
"""
SLEEPER = "#!/bin/sh\nexec sleep 600\n"


def experiment_text(
    jobs: int, command: str, low: float = 0.0, high: float = 1.0, noise: str = ""
) -> str:
    """The scale experiment: ``jobs`` at once, box ``[low, high]^3``, ``noise`` a TOML value
    of ``[experiment] noise`` (empty: unset)."""
    extra = f"\nnoise = {noise}" if noise else ""
    return EXPERIMENT.format(jobs=jobs, command=command, low=low, high=high, extra=extra)


def value(params: dict) -> float:
    return 50.0 + 10.0 * np.sin(3.0 * params["a"]) + 5.0 * params["b"] - 3.0 * params["c"] ** 2


def points(state: State, experiment: Experiment, count: int) -> list[dict]:
    """``count`` points: the initial design the search issues first, then uniform ones in
    the experiment's box (seeded). A state whose design is measured is fitted and searched
    at once; uniform points alone would leave the design to be proposed before any fit."""
    design = policy.Study(state, experiment).optimizer.initial_design()[:count]
    low = np.array([dim.low for dim in experiment.space.dims], dtype=float)
    high = np.array([dim.high for dim in experiment.space.dims], dtype=float)
    rows = low + (high - low) * np.random.default_rng(0).random((count - len(design), 3))
    return [*design, *(dict(zip("abc", map(float, row), strict=True)) for row in rows)]


def build(folder: Path, n: int) -> tuple[Path, StateStore, Controller]:
    """A state with ``n`` measured points and :data:`JOBS` sleeping jobs submitted."""
    sleeper = folder / "sleeper"
    sleeper.write_text(SLEEPER)
    sleeper.chmod(0o755)
    experiment = parse_experiment(experiment_text(JOBS, str(sleeper)), "scale.toml")
    path = folder / "state" / "scale.h5"
    store = StateStore.create(path, experiment)
    for i, params in enumerate(points(store.state, experiment, n + JOBS)):
        point = store.state.add_point(params, "manual", 0)
        if i < n:
            store.state.record(point.id, value(point.params))
    store.commit()
    run = layout.run_dir(path)
    controller = Controller(
        store,
        JobSettings.from_experiment(experiment, folder, path),
        LocalScheduler(layout.jobs_dir(run)),
        run,
    )
    controller.cycle()  # submits the JOBS pending points
    return path, store, controller


def finish_jobs(controller: Controller) -> None:
    """End the sleeping jobs with a valid result each, as a trainer would."""
    for point in controller.state.with_status(PointStatus.SUBMITTED, PointStatus.RUNNING):
        folder = layout.point_dir(controller.run, point.id)
        write_result(
            folder,
            Result(point.id, dict(point.params), {"top1": value(point.params), "top5": 99.0},
                   10, 0, 1, 1, "cpu", 0.0, 1.0, now_iso(), now_iso(), "bench", ""),
        )  # fmt: skip
        controller.scheduler.cancel(point.job_id)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path, store, controller = build(Path(tmp), n)
        try:
            restarted = Controller(store, controller.settings, controller.scheduler, controller.run)
            first = timed(restarted.cycle)
            steady = statistics.median(timed(restarted.cycle) for _ in range(5))
            propose = float("nan")
            if n <= 1000:
                finish_jobs(restarted)
                propose = timed(restarted.cycle)
            size = path.stat().st_size
        finally:
            for point in store.state.with_status(PointStatus.SUBMITTED, PointStatus.RUNNING):
                controller.scheduler.cancel(point.job_id)
            store.close()
    return {"n": n, "first": first, "steady": steady, "propose": propose, "mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    args = parser.parse_args()
    print("| points | first cycle (s) | steady cycle (s) | propose cycle (s) | state file (MB) |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        row = measure(n)
        propose = "-" if np.isnan(row["propose"]) else f"{row['propose']:.3f}"
        print(
            f"| {n} | {row['first']:.3f} | {row['steady']:.3f} | {propose} | {row['mb']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
