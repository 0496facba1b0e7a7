"""`splinenas status` and a spline fit against the number of measured points.

Run ``python benchmarks/status_scale.py [--status 1000 10000] [--fit 500 1000 2000]
[--propose 2000 10000] [--noise '"auto"']``; prints a markdown table. Each row runs in a fresh
process (its peak RSS is the memory column; CPU seconds are user + system,
which the load of a shared machine inflates less than the wall clock).
``status`` reads a state of N measured points of a 3-dim box with one stored
fit and prints the table as JSON: it must never refit, so its cost is reading
the state. ``fit`` is what a controller does once per batch: fit the spline
over N measured points, propose a batch (with its fantasy refits) and keep
the fit it stores. ``propose`` runs ``splinenas propose --dry-run``; past the
support limit of the spline both end in its one-line refusal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from controller_scale import EXPERIMENT, value
import numpy as np
from nas.config import parse_experiment
from nas.record.store import StateStore

mode, n = sys.argv[1], int(sys.argv[2])
folder, noise = Path(sys.argv[4]), sys.argv[5]
path = folder / f"s{n}{noise}.h5"
if not path.exists():
    text = EXPERIMENT.format(jobs=4, python="python3")
    if noise:
        text = text.replace("[experiment]", f"[experiment]\nnoise = {noise}")
    experiment = parse_experiment(text, "scale.toml")
    with StateStore.create(path, experiment) as store:
        design = store.state.space.initial_design()
        rows = np.random.default_rng(0).random((n - len(design), 3))
        for params in [*design, *(dict(zip("abc", map(float, row))) for row in rows)]:
            point = store.state.add_point(params, "manual", 0)
            store.state.record(point.id, value(point.params))
        store.state.add_fit([0, 1, 2], [0.0] * 7, 0.1, {"a": 0.5, "b": 0.5, "c": 0.5}, 60.0)
        store.commit()
if mode == "build":
    sys.exit(0)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

started, cpu_started = time.perf_counter(), cpu()
if mode in ("status", "propose"):
    from nas.commands.main import main
    import contextlib, io
    argv = ["status", "--json"] if mode == "status" else ["propose", "--dry-run", "--json"]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([*argv, "--state", str(path)])
    refusal = (err.getvalue().strip().splitlines() or ["exit code %d" % code])[-1]
else:
    from nas.control import policy
    from nas.record.store import load_state
    state = load_state(path)
    study = policy.Study(state, policy.experiment_of(state, str(path)))
    started, cpu_started = time.perf_counter(), cpu()
    made = study.propose()
    assert made and state.fits[-1].support_ids and len(state.fits[-1].support_ids) == n, "no fit"
seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
row = {"seconds": seconds, "cpu": cpu_seconds, "gib": rss}
print(json.dumps({**row, "refusal": refusal} if mode == "propose" and code != 0 else row))
"""


def run(mode: str, n: int, folder: Path, noise: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    argv = [sys.executable, "-c", CHILD, mode, str(n), str(ROOT / "benchmarks"), str(folder), noise]
    subprocess.run([*argv[:3], "build", *argv[4:]], env=env, capture_output=True)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no message"])[-1]}
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--fit", type=int, nargs="*", default=[500, 1000, 2000])
    parser.add_argument("--propose", type=int, nargs="*", default=[])
    parser.add_argument(
        "--noise", default="", help="the experiment's noise setting as TOML, e.g. '\"auto\"'"
    )
    args = parser.parse_args()
    label = f" (noise = {args.noise})" if args.noise else ""
    print("| what | N | seconds | CPU seconds | peak RSS (GiB) |\n|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for mode, sizes in (("status", args.status), ("fit", args.fit), ("propose", args.propose)):
            for n in sizes:
                row = run(mode, n, Path(tmp), args.noise)
                if "error" in row:
                    print(f"| {mode}{label} | {n} | {row['error']} | | |")
                    continue
                cells = f"{row['seconds']:.2f} | {row['cpu']:.2f} | {row['gib']:.2f}"
                note = f" refused: {row['refusal']}" if "refusal" in row else ""
                print(f"| {mode}{label}{note} | {n} | {cells} |")


if __name__ == "__main__":
    main()
