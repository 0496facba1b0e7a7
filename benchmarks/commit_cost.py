"""CPU time of one controller commit on a state of N measured points, each with a curve.

Run ``python benchmarks/commit_cost.py [--points 10000] [--repeat 5]``;
prints a markdown table. The state is the one of
``benchmarks/command_latency.py`` (N points of a 3-dim box, each with a
learning curve of its ``EPOCHS`` entries and its pace). The controller opens
it once and then commits after every change; each row times, in this
process, one such commit after recording one more point's result: the first
commit after the open (every stored curve still undecoded) and the ones
after it. A commit writes the whole file anew (see :mod:`nas.record.store`),
so its cost grows with N; the stored curves it did not change are copied as
their stored tables, not decoded into entries and encoded again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from command_latency import EPOCHS, build, curve

from nas.record.store import StateStore


def timed_commit(store: StateStore, point_id: int) -> float:
    """CPU seconds of the commit after ``point_id``'s curve and measurement change."""
    value = store.state.point(point_id).value + 0.25
    store.state.set_curve(point_id, curve(value))
    store.state.record(point_id, value, replace=True)
    start = time.process_time()
    store.commit()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "commit.h5"
        build(path, args.points)
        with StateStore.open(path) as store:
            ids = [p.id for p in store.state.points][: args.repeat + 1]
            first = timed_commit(store, ids[0])
            later = [timed_commit(store, point_id) for point_id in ids[1:]]
        size = path.stat().st_size / 2**20
        print(f"{args.points} points, {EPOCHS}-entry curves, state file {size:.1f} MiB; "
              f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
        print("| commit | CPU s |")
        print("| --- | --- |")
        print(f"| first after the open | {first:.3f} |")
        print(f"| later (median of {len(later)}) | {statistics.median(later):.3f} |")


if __name__ == "__main__":
    main()
