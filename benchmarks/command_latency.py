"""CPU time of the commands a person runs on a login node, on a state of N measured points.

Run ``python benchmarks/command_latency.py [--points 1000] [--repeat 5]``;
prints a markdown table. Each command runs as its own process
(``python -m nas ...``), as a person starts it; the CPU column is the
median user + system time of that process (interpreter start and imports
included), read from ``getrusage(RUSAGE_CHILDREN)``; the package's bytecode
is compiled first, as ``pip install`` leaves it (with
``PYTHONDONTWRITEBYTECODE`` set and no bytecode, every run would compile
every module again). The state holds N
measured points of a 3-dim box, each with a learning curve of
:data:`EPOCHS` entries and its training pace, and the fit on all of them,
as the controller leaves it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nas.config import parse_experiment
from nas.control import policy
from nas.record.store import StateStore
from nas.search.spline import MAX_SUPPORT

EXPERIMENT = """
[experiment]
name = "latency"
max_points = 1000000
[[space]]
name = "a"
type = "float"
low = 0.0
high = 1.0
[[space]]
name = "b"
type = "float"
low = 0.0
high = 1.0
[[space]]
name = "c"
type = "int"
low = 1
high = 8
"""
#: Entries of each point's learning curve (one per epoch).
EPOCHS = 30
COMMANDS = (
    ("status",),
    ("status", "--json"),
    ("show", "5"),
    ("export", "--csv"),
    ("export", "--json"),
)


def value(params: dict) -> float:
    return float(np.sin(3 * params["a"]) + params["b"] - 0.1 * params["c"])


def curve(top1: float) -> list[dict]:
    """A learning curve rising to ``top1``, as the trainer writes it."""
    return [
        {
            "epoch": epoch,
            "images": 50_000 * epoch,
            "loss": 2.0 / epoch,
            "top1": top1 * epoch / EPOCHS,
            "top5": min(100.0, 2 * top1 * epoch / EPOCHS),
            "lr": 0.1,
            "seconds": 60.0 * epoch,
        }
        for epoch in range(1, EPOCHS + 1)
    ]


def measure(state, point_id: int, params: dict) -> None:
    """Record a measurement with what the controller's ingest stores beside it."""
    pace = {"images_per_second": 2480.5, "data_wait_share": 0.03, "device_hours": 0.5}
    state.set_curve(point_id, curve(value(params)))
    state.update_point(point_id, gpu_hours=0.5, extra={"pace": pace})
    state.record(point_id, value(params))


def build(path: Path, n: int) -> None:
    """A state with ``n`` measured points, their curves and pace, and its fit stored."""
    experiment = parse_experiment(EXPERIMENT, "latency.toml")
    rng = np.random.default_rng(0)
    with StateStore.create(path, experiment) as store:
        study = policy.Study(store.state, experiment)
        for point in study.initial_batch():
            measure(store.state, point.id, point.params)
        while len(store.state.points) < n:
            row = rng.random(3)
            params = {"a": float(row[0]), "b": float(row[1]), "c": 1 + int(row[2] * 8)}
            if store.state.find(params) is None:
                point = store.state.add_point(params, "manual", 1)
                measure(store.state, point.id, params)
        if n <= MAX_SUPPORT:  # beyond it the fit is refused; the readers read the rest the same
            study.store_fit()
        store.commit()


def cpu_seconds(argv: list[str]) -> tuple[float, float, float]:
    """CPU (user + system) seconds, wall seconds and peak RSS (MiB) of one process running ``argv``.

    Measured by GNU time between this process and the command: Linux carries
    a parent's peak RSS into a child it forks, so ``wait4`` would report this
    benchmark's own peak (the state it built) for every command.
    """
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%U %S %M", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    wall = time.perf_counter() - start
    user, system, kib = done.stderr.strip().splitlines()[-1].split()
    return float(user) + float(system), wall, float(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    package = Path(__file__).resolve().parents[1] / "nas"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "latency.h5"
        build(state, args.points)
        baseline = [cpu_seconds([sys.executable, "-c", "import h5py"])[0] for _ in range(3)]
        print(f"{args.points} points, {EPOCHS}-entry curves; load average "
              f"{os.getloadavg()[0]:.1f}; `python -c 'import h5py'` alone: "
              f"{statistics.median(baseline):.2f} s CPU\n")  # fmt: skip
        print("| command | CPU s (median) | wall s (median) | peak RSS MiB (median) |")
        print("| --- | --- | --- | --- |")
        for command in COMMANDS:
            argv = [sys.executable, "-m", "nas", command[0], "--state", str(state), *command[1:]]
            runs = [cpu_seconds(argv) for _ in range(args.repeat)]
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            peak = statistics.median(r[2] for r in runs)
            print(f"| `splinenas {' '.join(command)}` | {cpu:.2f} | {wall:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
