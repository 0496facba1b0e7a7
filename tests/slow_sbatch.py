"""SIGKILL the controller while a slow ``sbatch`` submits: no job name may run twice.

A wrapper named ``sbatch`` first on PATH sleeps, calls the real one, and
sleeps again, the way sbatch behaves when slurmctld is busy; it journals
every submission. The controller (``splinenas run``) is killed at random
moments, orphaning wrappers mid-submission, and restarted; a monitor thread
asks squeue all the while for unfinished jobs sharing a name. The short
version runs in the default suite (tests/test_backend_slurm.py); the long
one on demand, under the Slurm lock:

    flock /tmp/slurm.lock python tests/slow_sbatch.py --kills 50
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_support import experiment_text, init_state, write_fake_trainer  # noqa: E402
from scheduler_contract import unique_name  # noqa: E402

from nas.record.state import PointStatus  # noqa: E402
from nas.record.store import load_state  # noqa: E402

#: Sleeps 0-2 s, submits with the real sbatch, journals the answer, sleeps 0-2 s.
WRAPPER = r"""#!/bin/bash
name=""
for arg in "$@"; do [[ $arg == --job-name=* ]] && name=${arg#--job-name=}; done
sleep "$((RANDOM % 3)).$((RANDOM % 10))"
out=$({real} "$@")
rc=$?
[[ $rc -eq 0 ]] && printf '%s %s\n' "$name" "$out" >>{journal}
sleep "$((RANDOM % 3)).$((RANDOM % 10))"
printf '%s\n' "$out"
exit $rc
"""


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

    def line(self) -> str:
        twice = sum(1 for n in self.submissions.values() if n > 1)
        return (
            f"{self.kills} kills ({self.orphaned} with sbatch in flight), "
            f"{sum(self.submissions.values())} submissions of {len(self.submissions)} names, "
            f"{twice} names submitted twice, max {self.max_alive_per_name} unfinished jobs "
            f"per name at once, {self.done}/{self.points} points done in {self.seconds:.0f} s"
        )


def install_wrapper(folder: Path) -> tuple[Path, Path]:
    """The slow sbatch in ``folder/bin``; returns (bin folder, journal)."""
    real = shutil.which("sbatch")
    assert real, "sbatch is not on PATH"
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    journal = folder / "sbatch-journal.txt"
    journal.touch()
    script = bin_dir / "sbatch"
    script.write_text(WRAPPER.replace("{real}", real).replace("{journal}", str(journal)))
    script.chmod(0o755)
    return bin_dir, journal


class Monitor(threading.Thread):
    """Polls squeue for unfinished jobs of one experiment; keeps the most per name seen."""

    def __init__(self, prefix: str) -> None:
        super().__init__(daemon=True)
        self.prefix = prefix
        self.most = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            done = subprocess.run(["squeue", "-h", "-o", "%j|%T"], capture_output=True, text=True)
            names = Counter(
                line.split("|")[0]
                for line in done.stdout.splitlines()
                if line.startswith(self.prefix) and not line.endswith("|COMPLETED")
            )
            self.most = max([self.most, *names.values()])
            time.sleep(0.2)


def controller(state_path: Path, cwd: Path, bin_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state_path), "--poll", "0.2"]
    with open(cwd / "controllers.log", "ab") as log:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)


def in_flight(journal_dir: Path) -> bool:
    """True when a wrapper is running (pgrep by its path)."""
    done = subprocess.run(["pgrep", "-f", str(journal_dir / "bin" / "sbatch")],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def wait_for_submitter(folder: Path, process: subprocess.Popen, limit: float) -> None:
    """Until a wrapper runs, the controller ends, or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None and not in_flight(folder):
        time.sleep(0.1)


def kill_run(folder: Path, kills: int, max_points: int, seed: int = 13) -> KillReport:
    """A stand-in search on Slurm through the slow sbatch; the controller is killed ``kills`` times.

    Every other kill waits for a submission in flight, the rest fall anywhere.
    """
    bin_dir, journal = install_wrapper(folder)
    trainer = write_fake_trainer(folder / "fake", {"sleep": 1.0})
    name = unique_name("kill")
    text = experiment_text(
        experiment={"name": name, "max_points": max_points, "batch_size": 3},
        cluster={"backend": "slurm", "python": str(trainer), "walltime_minutes": 10,
                 "signal_seconds": 60, "max_concurrent_jobs": 3},
    )  # fmt: skip
    state_path = init_state(folder, text)
    monitor = Monitor(f"{name}-")
    monitor.start()
    report = KillReport()
    rng = random.Random(seed)
    started = time.monotonic()
    try:
        while report.kills < kills:
            process = controller(state_path, folder, bin_dir)
            if report.kills % 2:
                time.sleep(rng.uniform(1.0, 5.0))  # any moment
            else:
                wait_for_submitter(folder, process, limit=8.0)  # mid-submission
                time.sleep(rng.uniform(0.0, 1.5))
            if process.poll() is not None:
                break  # the search finished between two kills
            report.orphaned += in_flight(folder)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            report.kills += 1
        final = controller(state_path, folder, bin_dir)
        final.wait(timeout=600)
    finally:
        monitor.stop.set()
        monitor.join()
        subprocess.run(["scancel", "-n", ",".join(
            p.job_name for p in load_state(state_path).points if p.job_name)],
            capture_output=True)  # fmt: skip
    report.seconds = time.monotonic() - started
    report.max_alive_per_name = monitor.most
    report.submissions = Counter(line.split()[0] for line in journal.read_text().splitlines())
    state = load_state(state_path)
    report.points = len(state.points)
    report.done = len(state.with_status(PointStatus.DONE))
    report.recorded = Counter(e.point_id for e in state.events if e.kind == "record")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--keep", type=Path, help="run in this new folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        os.chdir(folder)
        report = kill_run(folder, args.kills, args.points)
    print(report.line())
    twice = [n for n, k in report.submissions.items() if k > 1]
    ok = not twice and report.max_alive_per_name <= 1 and report.done == report.points
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
