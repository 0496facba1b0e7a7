"""SIGKILL the controller mid-submission and restart it on another host with another TMPDIR.

A wrapper named after the backend's submit command (``sbatch``, ``bsub``,
``qsub``, ``flux batch``) comes first on PATH: it sleeps, calls the real one
(the Slurm test cluster, or the doubles of tests/fakes), journals what was
submitted and sleeps again, the way a submit command behaves when the
scheduler is busy. The controller (``splinenas run``) is killed at random
moments, half of them while a wrapper runs, and restarted with a new TMPDIR
and, every other time, under another host name (a UTS namespace made by
``unshare -u``; the operator's ``splinenas unlock --force`` takes the state
lock over, as on a real second login node). A monitor asks the scheduler all
the while for the jobs of the search. At the end no job name may have been
submitted twice and no two trainings of a point may have overlapped (the
stand-in trainer writes ``overlaps.txt`` when it finds the point's GPUs busy).

The default suite runs a few kills per backend (tests/test_kill_campaign.py);
the campaign of the issue runs on demand, printing one line per backend::

    python tests/kill_campaign.py --kills 30 lsf pbs flux
    eval "$(bash tests/slurm/cluster.sh env)"; flock /tmp/slurm.lock \\
        python tests/kill_campaign.py --kills 30 slurm
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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_support import experiment_text, init_state, write_fake_trainer  # noqa: E402
from scheduler_contract import unique_name  # noqa: E402

from nas.cluster import backend_class  # noqa: E402
from nas.pointdir import layout  # noqa: E402
from nas.record.state import PointStatus  # noqa: E402
from nas.record.store import load_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
#: The submit command of each backend, and the subcommand that submits (flux batch).
SUBMIT = {"slurm": ("sbatch", ""), "lsf": ("bsub", ""), "pbs": ("qsub", ""),
          "flux": ("flux", "batch")}  # fmt: skip
#: The fake scheduler's state folder variable.
FAKE_DIR = {"lsf": "FAKE_LSF_DIR", "pbs": "FAKE_PBS_DIR", "flux": "FAKE_FLUX_DIR"}
#: Seconds a submitter may run (SPLINENAS_SUBMIT_SECONDS): short, so host changes wait little.
SUBMIT_SECONDS = "8"

WRAPPER = r"""#!/bin/bash
if [[ -n "{sub}" && "$1" != "{sub}" ]]; then exec {real} "$@"; fi
name=""; prev=""
for arg in "$@"; do
  case $arg in --job-name=*) name=${arg#--job-name=};; esac
  [[ $prev == -J || $prev == -N ]] && name=$arg
  prev=$arg
done
sleep "$((RANDOM % 3)).$((RANDOM % 10))"
out=$({real} "$@")
rc=$?
[[ $rc -eq 0 ]] && printf '%s\n' "$name" >>{journal}
sleep "$((RANDOM % 3)).$((RANDOM % 10))"
printf '%s\n' "$out"
exit $rc
"""


@dataclass
class Report:
    """What a campaign on one backend saw."""

    backend: str
    kills: int = 0
    in_flight: int = 0  # kills that left a submitter running
    other_host: int = 0  # restarts under another host name
    waits: int = 0  # points a restarted controller left alone while a submission may run
    journal: Counter = field(default_factory=Counter)  # names -> successful submissions
    job_ids: dict = field(default_factory=lambda: defaultdict(set))  # name -> ids seen
    most_unfinished: int = 0
    overlaps: int = 0
    done: int = 0
    points: int = 0
    recorded: Counter = field(default_factory=Counter)  # point id -> measurements recorded
    seconds: float = 0.0

    def twice(self) -> list[str]:
        names = set(self.journal) | set(self.job_ids)
        return sorted(
            n for n in names if max(self.journal.get(n, 0), len(self.job_ids.get(n, ()))) > 1
        )

    def line(self) -> str:
        return (
            f"{self.backend}: {self.kills} kills ({self.in_flight} with a submitter in flight, "
            f"{self.other_host} restarts on another host, each with a new TMPDIR; "
            f"{self.waits} waits for a submission in flight), "
            f"{sum(self.journal.values())} submissions of {len(self.journal)} names, "
            f"{len(self.twice())} names submitted twice, max {self.most_unfinished} unfinished "
            f"jobs per name, {self.overlaps} overlapping trainings, {self.done}/{self.points} "
            f"points done in {self.seconds:.0f} s"
        )


class Monitor(threading.Thread):
    """Lists the scheduler's jobs of the search again and again: ids per name, most unfinished."""

    def __init__(self, backend: str, prefix: str, env: dict[str, str], report: Report) -> None:
        super().__init__(daemon=True)
        self.scheduler = backend_class(backend)(timeout=30)  # type: ignore[misc]
        self.prefix, self.env, self.report = prefix, env, report
        self.stop = threading.Event()

    def run(self) -> None:
        saved = dict(os.environ)
        os.environ.update(self.env)  # the fakes find their state folders by environment
        try:
            while not self.stop.is_set():
                self.look()
                time.sleep(0.3)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def look(self) -> None:
        try:
            records = self.scheduler._query((), ())
        except Exception:  # noqa: BLE001 - a failed look is retried
            return
        unfinished: Counter = Counter()
        for record in records:
            if record.name.startswith(self.prefix):
                self.report.job_ids[record.name].add(record.job_id)
                unfinished[record.name] += not record.state.is_finished()
        self.report.most_unfinished = max([self.report.most_unfinished, *unfinished.values()])


def install_wrapper(folder: Path, backend: str, env: dict[str, str]) -> tuple[Path, Path]:
    """The slow submit command in ``folder/bin``; returns (bin folder, journal)."""
    program, sub = SUBMIT[backend]
    real = shutil.which(program, path=env["PATH"])
    assert real, f"{program} is not on PATH"
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    journal = folder / "journal.txt"
    journal.touch()
    script = bin_dir / program
    text = WRAPPER.replace("{real}", real).replace("{journal}", str(journal))
    script.write_text(text.replace("{sub}", sub))
    script.chmod(0o755)
    return bin_dir, journal


def can_rename_host() -> bool:
    done = subprocess.run(["unshare", "-u", "hostname", "probe"], capture_output=True)
    return done.returncode == 0


def start(state: Path, cwd: Path, env: dict[str, str], host: str | None) -> subprocess.Popen:
    """``splinenas run``; under ``host`` as its host name when given (same pid: exec all the way)."""
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state), "--poll", "0.2"]
    if host is not None:
        argv = ["unshare", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', host, *argv]
    with open(cwd / "controllers.log", "ab") as log:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)


def submitting(bin_dir: Path) -> bool:
    """True while a wrapper runs (pgrep by its path)."""
    done = subprocess.run(["pgrep", "-f", str(bin_dir)], capture_output=True)
    return done.returncode == 0


def wait_until_idle(bin_dir: Path, limit: float = 60.0) -> None:
    """Until no wrapper runs (an orphan ends within its time limit)."""
    deadline = time.monotonic() + limit
    while submitting(bin_dir) and time.monotonic() < deadline:
        time.sleep(0.2)


def campaign(folder: Path, backend: str, kills: int, max_points: int, seed: int = 7) -> Report:
    """A stand-in search on ``backend``; its controller is killed ``kills`` times."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPLINENAS_SUBMIT_SECONDS": SUBMIT_SECONDS}
    if backend in FAKE_DIR:
        env["PATH"] = f"{FAKES}{os.pathsep}{env['PATH']}"
        env[FAKE_DIR[backend]] = str(folder / "scheduler")
    bin_dir, journal = install_wrapper(folder, backend, env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    trainer = write_fake_trainer(folder / "fake", {"sleep": 1.0})
    name = unique_name("kill")
    cluster = {"backend": backend, "python": str(trainer), "walltime_minutes": 10,
               "signal_seconds": 60, "max_concurrent_jobs": 3}  # fmt: skip
    text = experiment_text(
        experiment={"name": name, "max_points": max_points, "batch_size": 3}, cluster=cluster
    )
    state = init_state(folder, text)
    report = Report(backend)
    monitor = Monitor(backend, f"{name}-", env, report)
    monitor.start()
    rng = random.Random(seed)
    hosts = ["login-a", "login-b"] if can_rename_host() else [None]
    host = hosts[0]
    started = time.monotonic()
    try:
        while report.kills < kills:
            env["TMPDIR"] = tempfile.mkdtemp(prefix=f"tmp{report.kills}-", dir=folder)
            if report.kills % 2 == 0:
                wait_until_idle(bin_dir)  # so that the wrapper seen next is this controller's
            process = start(state, folder, env, host)
            if report.kills % 2:
                time.sleep(rng.uniform(1.0, 5.0))  # any moment
            else:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and process.poll() is None:
                    if submitting(bin_dir):
                        break
                    time.sleep(0.1)
                time.sleep(rng.uniform(0.0, 1.5))  # mid-submission
            if process.poll() is not None:
                break  # the search finished between two kills
            report.in_flight += submitting(bin_dir)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            report.kills += 1
            following = hosts[report.kills // 2 % len(hosts)]  # two restarts per host
            if following != host:
                report.other_host += 1
                unlock = [sys.executable, "-m", "nas", "unlock", "--force", "--state", str(state)]
                subprocess.run(unlock, env=env, capture_output=True, check=True)
            host = following
        env["TMPDIR"] = tempfile.mkdtemp(prefix="tmp-final-", dir=folder)
        start(state, folder, env, host).wait(timeout=1200)
        time.sleep(2.0)  # a last look at the finished jobs
    finally:
        monitor.stop.set()
        monitor.join()
        if backend == "slurm":
            names = [p.job_name for p in load_state(state).points if p.job_name]
            subprocess.run(["scancel", "-n", ",".join(names)], capture_output=True)
    report.seconds = time.monotonic() - started
    report.journal = Counter(journal.read_text().split())
    report.waits = (folder / "controllers.log").read_text().count("may still run")
    final = load_state(state)
    report.points = len(final.points)
    report.done = len(final.with_status(PointStatus.DONE))
    report.recorded = Counter(e.point_id for e in final.events if e.kind == "record")
    run = layout.run_dir(state)
    report.overlaps = sum(
        len((layout.point_dir(run, p.id) / "overlaps.txt").read_text().splitlines())
        for p in final.points
        if (layout.point_dir(run, p.id) / "overlaps.txt").exists()
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="+", choices=sorted(SUBMIT))
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--points", type=int, default=24)
    parser.add_argument("--keep", type=Path, help="run in this new folder and keep it")
    args = parser.parse_args()
    failed = False
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            folder = (args.keep / backend) if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            report = campaign(folder, backend, args.kills, args.points)
        print(report.line(), flush=True)
        failed |= bool(report.twice()) or report.overlaps > 0 or report.done != report.points
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
