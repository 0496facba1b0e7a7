"""SIGKILL the controller while a slow ``sbatch`` submits: no job name may run twice.

The Slurm case of tests/kill_campaign.py (which see: restarts under another
host name and TMPDIR too), under the names the Slurm controller tests use.
The short version runs with the Slurm tests (tests/test_backend_slurm.py);
the long one on demand, under the Slurm lock:

    flock /tmp/slurm.lock python tests/slow_sbatch.py --kills 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kill_campaign import campaign  # noqa: E402


@dataclass
class KillReport:
    """What a kill run saw."""

    kills: int = 0
    orphaned: int = 0  # kills that left a wrapper submitting
    max_alive_per_name: int = 0
    submissions: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    done: int = 0
    points: int = 0
    recorded: Counter = field(default_factory=Counter)
    overlaps: int = 0  # trainings that found their point's GPUs busy

    def line(self) -> str:
        twice = sum(1 for n in self.submissions.values() if n > 1)
        return (
            f"{self.kills} kills ({self.orphaned} with sbatch in flight), "
            f"{sum(self.submissions.values())} submissions of {len(self.submissions)} names, "
            f"{twice} names submitted twice, max {self.max_alive_per_name} unfinished jobs "
            f"per name at once, {self.overlaps} overlapping trainings, {self.done}/{self.points} "
            f"points done in {self.seconds:.0f} s"
        )


def kill_run(folder: Path, kills: int, max_points: int, seed: int = 13) -> KillReport:
    """A stand-in search on Slurm through the slow sbatch; the controller is killed ``kills`` times."""
    report = campaign(folder, "slurm", kills, max_points, seed)
    names = set(report.journal) | set(report.job_ids)
    submissions = Counter(
        {n: max(report.journal.get(n, 0), len(report.job_ids.get(n, ()))) for n in names}
    )
    return KillReport(report.kills, report.in_flight, report.most_unfinished, submissions,
                      report.seconds, report.done, report.points, report.recorded,
                      report.overlaps)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--points", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = kill_run(Path(tmp), args.kills, args.points)
    print(report.line())
    twice = [n for n, k in report.submissions.items() if k > 1]
    ok = not twice and report.max_alive_per_name <= 1 and report.done == report.points
    ok = ok and report.overlaps == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
