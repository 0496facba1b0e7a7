"""What only Slurm does, on the real one-node cluster of tests/slurm/cluster.sh.

Rendered scripts run two ranks under srun, a person's scancel is detected, a
cluster without accounting answers for unknown jobs, the time limit warns the
step; and the controller waits for a job that squeue stops listing, carries a
hostile free directive to sbatch as text, and never runs a job name twice
when killed during slow sbatch calls. What every backend does is in
test_backends.py.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

import pytest
from controller_cluster_support import (
    HOSTILE,
    PATIENCE,
    hostile_standin_search,
    run_search,
    standin_search_state,
)
from scheduler_contract import finished, wait_for
from slow_sbatch import kill_run
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.cluster import JobState, SlurmScheduler
from nas.cluster.proc import run_command
from nas.cluster.render import render_job_script, write_job_script
from nas.config import ClusterConfig
from nas.control import policy
from nas.record.state import PointStatus
from nas.record.store import load_state

pytestmark = pytest.mark.slurm

#: Stands in for python under srun: one file per rank with its argv and the
#: rendezvous the trainer's own rule derives from the allocation.
RANK_PYTHON = f"""#!/bin/bash
rendezvous=$({sys.executable} -c 'import os; from nas.train.launch import detect
env = detect(os.environ); print(f"{{env.master_addr}}:{{env.master_port}}")')
printf '%s\\n' "$SLURM_PROCID/$SLURM_NTASKS" "$rendezvous" "$@" >"rank-$SLURM_PROCID"
"""


@pytest.fixture()
def scheduler(slurm_cluster: str) -> SlurmScheduler:  # noqa: F811
    return SlurmScheduler(timeout=30)


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _submit_rendered(
    scheduler: SlurmScheduler, point: Path, python: Path, **cluster: object
) -> str:
    config = ClusterConfig(backend="slurm", python=str(python), **cluster)
    text = render_job_script("slurm", cluster=config, point_dir=point, job_name="e2e-1",
                             stdout_path="slurm-%j.out")  # fmt: skip
    script = write_job_script(point / "job.sh", text)
    return scheduler.submit(script, job_name="e2e-1", cwd=point)


def test_a_rendered_script_runs_two_ranks(scheduler: SlurmScheduler, tmp_path: Path) -> None:
    point = tmp_path / "point a 0"
    point.mkdir()
    python = _executable(tmp_path / "python", RANK_PYTHON)
    started = time.monotonic()
    job_id = _submit_rendered(scheduler, point, python, ranks_per_node=2, cores_per_node=2,
                              walltime_minutes=5, signal_seconds=60)  # fmt: skip
    state = wait_for(scheduler, job_id, finished, 60)
    log = (point / f"slurm-{job_id}.out").read_text()
    assert state is JobState.COMPLETED, log
    print(f"slurm round trip of a 2-rank job: {time.monotonic() - started:.2f} s")
    rendezvous = set()
    for rank in (0, 1):
        lines = (point / f"rank-{rank}").read_text().splitlines()
        assert lines[0] == f"{rank}/2"
        rendezvous.add(lines[1])  # derived from the allocation by every rank alike
        assert lines[2:6] == ["-m", "nas.trial.launch", "--point-dir", str(point)]
        assert lines[6:9] == ["--workdir", str(point), "--deadline"]
        assert 0 < int(lines[9]) - time.time() <= 240
        assert lines[10] == "--" and lines[-2:] == ["-m", "nas.train"]
    (address_and_port,) = rendezvous
    address, port = address_and_port.rsplit(":", 1)
    assert address and 15000 <= int(port) < 32768


def test_scancel_by_a_person_is_detected(scheduler: SlurmScheduler, tmp_path: Path) -> None:
    script = _executable(tmp_path / "job.sh", "#!/bin/bash\nsleep 120\n")
    job_id = scheduler.submit(script, job_name="by-hand", cwd=tmp_path)
    wait_for(scheduler, job_id, lambda s: s is JobState.RUNNING, 30)
    run_command(["scancel", job_id])
    assert wait_for(scheduler, job_id, finished, 30) is JobState.CANCELLED
    assert "JobState=CANCELLED" in scheduler.reason(job_id)


def test_without_accounting_an_unknown_job_is_unknown(
    scheduler: SlurmScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert scheduler.status(["99999"]) == {"99999": JobState.UNKNOWN}
    assert "accounting is disabled" in caplog.text
    assert "no record of job 99999" in scheduler.reason("99999")


@pytest.mark.slow
def test_time_limit_warns_the_step_then_times_out(
    scheduler: SlurmScheduler, tmp_path: Path
) -> None:
    marker = tmp_path / "usr2"
    python = _executable(
        tmp_path / "python",
        f"#!/bin/bash\ntrap 'date +%s >>{marker}' USR2\nwhile :; do sleep 0.2; done\n",
    )
    job_id = _submit_rendered(scheduler, tmp_path, python, walltime_minutes=1,
                              signal_seconds=40)  # fmt: skip
    wait_for(scheduler, job_id, lambda s: s is JobState.RUNNING, 30)
    started = time.time()
    assert wait_for(scheduler, job_id, finished, 150) is JobState.TIMEOUT
    assert marker.exists(), "USR2 never reached the job step"
    assert int(marker.read_text().split()[0]) < time.time()
    print(f"time limit of 1 min reached after {time.time() - started:.0f} s")


# --------------------------------------------------------------------------- the controller


def job_names() -> list[str]:
    """Names of every job the cluster still lists, finished ones included."""
    done = run_command(["squeue", "-h", "-t", "all", "-o", "%j"], timeout=30)
    return done.stdout.split()


def experiment_name(state_path: Path) -> str:
    return policy.experiment_of(load_state(state_path), str(state_path)).experiment.name


def hide_from_squeue(folder: Path, pattern: str) -> Path:
    """A ``squeue`` that leaves out every line with ``pattern``; the real one answers the rest."""
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "squeue"
    fake.write_text(
        "#!/bin/bash\n"
        'out=$(/usr/bin/squeue "$@") || exit $?\n'
        f"printf '%s\\n' \"$out\" | grep -vF -- {shlex.quote(pattern)}\n"
        "exit 0\n"
    )
    fake.chmod(0o755)
    return folder


def test_a_job_squeue_stops_listing_is_not_submitted_again_while_it_runs(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """squeue never lists point 0's job; scontrol still knows it, so it is waited for."""
    monkeypatch.chdir(tmp_path)
    behaviour = {"modes": {"0": ["slow"]}, "slow_seconds": 8.0}
    state_path = standin_search_state(tmp_path, "slurm", tmp_path / "fake", behaviour)
    prefix = f"{experiment_name(state_path)}-p0-"
    hidden = hide_from_squeue(tmp_path / "bin", prefix)
    monkeypatch.setenv("PATH", f"{hidden}:{os.environ['PATH']}")
    assert prefix not in run_command(["squeue", "-h", "-t", "all", "-o", "%j"]).stdout
    run_search(state_path, tmp_path, poll=0.5, limit_s=PATIENCE)
    point = load_state(state_path).point(0)
    monkeypatch.undo()
    assert [n for n in job_names() if n.startswith(prefix)] == [f"{prefix}r0a1s0"]
    assert (point.status, point.attempts) == (PointStatus.DONE, 1)
    restarted = SlurmScheduler(timeout=30)  # a restarted controller confirms by id and name
    assert restarted.missing_state(point.job_id, point.job_name) is JobState.COMPLETED
    assert restarted.missing_state(point.job_id, "another-job") is JobState.UNKNOWN


def test_hostile_paths_and_directives_travel_as_text_to_slurm(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quotes and ';' in the run folder, '$(...)' and backquotes in the interpreter's and
    the env file's paths, command substitution in a free directive: all stay text."""
    monkeypatch.chdir(tmp_path)
    directive = f'--comment="{HOSTILE[0]} {HOSTILE[1]}"'
    state_path = hostile_standin_search(tmp_path, "slurm", extra_directives=[directive])
    job = load_state(state_path).point(0).job_id
    shown = run_command(["scontrol", "show", "job", "-o", job], timeout=30).stdout
    assert f"Comment={HOSTILE[0]} {HOSTILE[1]} " in shown


def test_killing_the_controller_during_a_slow_sbatch_never_runs_a_job_name_twice(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Orphaned sbatch calls submit after the restarted controller asked squeue: no duplicate.

    The long run (>= 50 kills) is ``python tests/slow_sbatch.py --kills 50``.
    """
    monkeypatch.chdir(tmp_path)
    report = kill_run(tmp_path, kills=10, max_points=14)
    print(report.line())
    assert report.kills >= 8 and report.orphaned >= 3, "too few kills hit a submission"
    assert [n for n, k in report.submissions.items() if k > 1] == [], report.line()
    assert report.max_alive_per_name == 1, report.line()
    assert report.overlaps == 0, report.line()
    assert report.done == report.points == 14
    assert set(report.recorded.values()) == {1}, "every measurement exactly once"
