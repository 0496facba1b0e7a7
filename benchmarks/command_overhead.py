"""The controller's overhead per candidate for a ``[train] command`` that runs a fixed time.

Run ``python benchmarks/command_overhead.py [--points 20] [--seconds 1] [--poll 0.1]``
from anywhere; prints a markdown table. A search of ``--points`` candidates
over one log-scale dimension runs with ``splinenas init`` + ``splinenas run``
(in this process, as ``splinenas run`` would) on the local backend, one job
at a time (``max_concurrent_jobs = 1``, ``batch_size = 1``), so the wall time
is the candidates' own time plus everything splinenas adds: proposing
(spline fit and maximisation), writing ``point.json`` and the job script,
committing the state, starting the job (bash, the launch wrapper's Python,
the rendezvous), polling, validating and ingesting ``result.json``. The
command is a shell script that records when it started and ended, sleeps
``--seconds`` and writes its result; the table gives the overhead per
candidate, (wall time - time inside the commands) / candidates, and the gap
from one command's end to the next one's start (the same overhead, seen
from the commands; up to one ``--poll`` of it is the controller waiting).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nas.commands.main import main

COMMAND = """#!/bin/sh
# A candidate that trains for $2 seconds: records its start and end, writes its result.
start=$(date +%s.%N)
sleep "$2"
end=$(date +%s.%N)
printf '%s %s\\n' "$start" "$end" >"$SPLINENAS_POINT_DIR/times.txt"
awk -v x="$1" 'BEGIN { printf "{\\"metrics\\": {\\"score\\": %.12g}}\\n", -(log(x) / log(10) + 2) ^ 2 }' \\
    >"$SPLINENAS_POINT_DIR/result.tmp"
mv "$SPLINENAS_POINT_DIR/result.tmp" "$SPLINENAS_POINT_DIR/result.json"
"""

EXPERIMENT = """
[experiment]
name = "overhead"
metric = "score"
max_points = {points}
tolerance = 0.0
stop = "paper"

[[space]]
name = "x"
type = "float"
low = 1e-4
high = 1e-1
log = true

[train]
command = ["{command}", "{{x}}", "{seconds}"]

[cluster]
max_concurrent_jobs = 1
"""


def measure(folder: Path, points: int, seconds: float, poll: float) -> dict[str, float]:
    """Run the search in ``folder``; the timings of its candidates."""
    command = folder / "train.sh"
    command.write_text(COMMAND)
    command.chmod(0o755)
    text = EXPERIMENT.format(points=points, command=command, seconds=seconds)
    (folder / "overhead.toml").write_text(text)
    if main(["init", str(folder / "overhead.toml"), "--state", str(folder / "s.h5")]) != 0:
        sys.exit("init failed")
    started = time.time()
    main(["run", "--state", str(folder / "s.h5"), "--poll", str(poll)])
    wall = time.time() - started
    runs = sorted(
        tuple(map(float, (p / "times.txt").read_text().split()))
        for p in (folder / "s" / "points").iterdir()
        if (p / "times.txt").exists()
    )
    gaps = [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(runs)]
    return {
        "candidates": len(runs),
        "wall": wall,
        "command": sum(end - start for start, end in runs),
        "gap_median": statistics.median(gaps) if gaps else float("nan"),
        "gap_max": max(gaps) if gaps else float("nan"),
    }


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.1, help="splinenas run --poll")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found = measure(Path(tmp), args.points, args.seconds, args.poll)
    n = found["candidates"]
    per = (found["wall"] - found["command"]) / n
    print(f"{n} candidates of a {args.seconds:g} s command, local backend, one job at a time, "
          f"--poll {args.poll:g}\n")  # fmt: skip
    print("| measure | seconds |")
    print("| --- | --- |")
    print(f"| wall time of `splinenas run` | {found['wall']:.1f} |")
    print(f"| time inside the commands | {found['command']:.1f} |")
    print(f"| **overhead per candidate** (wall − commands) / n | **{per:.2f}** |")
    print(
        f"| median gap from one command's end to the next one's start | {found['gap_median']:.2f} |"
    )
    print(f"| largest such gap | {found['gap_max']:.2f} |")


if __name__ == "__main__":
    main_benchmark()
