"""`splinenas status` and a spline fit against the number of measured points.

Run ``python benchmarks/status_scale.py [--status 1000 10000] [--fit 500 1000 2000]
[--propose 2000 10000] [--noise '"auto"'] [--positive]``; prints a markdown table. Each row runs in a fresh
process (its peak RSS is the memory column; CPU seconds are user + system,
which the load of a shared machine inflates less than the wall clock).
``status`` reads a state of N measured points of a 3-dim box with one stored
fit and prints the table as JSON: it must never refit, so its cost is reading
the state. ``fit`` is what a controller does once per batch: fit the spline
over N measured points, propose a batch (with its fantasy refits) and keep
the fit it stores. ``propose`` runs ``splinenas propose --dry-run``; past the
support limit of the spline both end in its one-line refusal. ``--positive``
moves the box from [0, 1]^3 to [1, 10]^3: every dimension may then be given
to the spline on a log scale (``warping = "auto"``, the default), so each
exact fit first compares the scales by leave-one-out error
(:func:`nas.search.warp.choose`: up to six fits more; the exact fit is the one it scored).
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
from controller_scale import experiment_text, points, value
from nas.config import parse_experiment
from nas.record.store import StateStore

mode, n = sys.argv[1], int(sys.argv[2])
folder, noise, positive = Path(sys.argv[4]), sys.argv[5], sys.argv[6] == "positive"
path = folder / f"s{n}{noise}{'p' if positive else ''}.h5"
low, high = (1.0, 10.0) if positive else (0.0, 1.0)
if not path.exists():
    text = experiment_text(4, "true", low, high, noise)
    experiment = parse_experiment(text, "scale.toml")
    with StateStore.create(path, experiment) as store:
        for params in points(store.state, experiment, n):
            point = store.state.add_point(params, "manual", 0)
            store.state.record(point.id, value(point.params))
        mid = (low + high) / 2
        store.state.add_fit([0, 1, 2], [0.0] * 7, 0.1, {"a": mid, "b": mid, "c": mid}, 60.0)
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


def run(mode: str, n: int, folder: Path, noise: str, positive: bool = False) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    box = "positive" if positive else "unit"
    argv = [
        sys.executable,
        "-c",
        CHILD,
        mode,
        str(n),
        str(ROOT / "benchmarks"),
        str(folder),
        noise,
        box,
    ]
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
    parser.add_argument(
        "--positive",
        action="store_true",
        help="box [1, 10]^3 instead of [0, 1]^3: each fit chooses log scales (warping)",
    )
    args = parser.parse_args()
    label = f" (noise = {args.noise})" if args.noise else ""
    label += " (box [1, 10]^3, warp chosen)" if args.positive else ""
    print("| what | N | seconds | CPU seconds | peak RSS (GiB) |\n|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for mode, sizes in (("status", args.status), ("fit", args.fit), ("propose", args.propose)):
            for n in sizes:
                row = run(mode, n, Path(tmp), args.noise, args.positive)
                if "error" in row:
                    print(f"| {mode}{label} | {n} | {row['error']} | | |")
                    continue
                cells = f"{row['seconds']:.2f} | {row['cpu']:.2f} | {row['gib']:.2f}"
                note = f" refused: {row['refusal']}" if "refusal" in row else ""
                print(f"| {mode}{label}{note} | {n} | {cells} |")


if __name__ == "__main__":
    main()
