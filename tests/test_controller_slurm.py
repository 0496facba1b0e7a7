"""The controller end to end on the real one-node Slurm cluster (tests/slurm/cluster.sh).

A search of the real trainer with two gloo ranks per job started by srun, a
candidate cancelled by a person with scancel, a running job that squeue stops
listing, and hostile config values on their way from the experiment through
the job script to sbatch.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from controller_cluster_support import (
    HOSTILE,
    assert_refused_directive,
    cancel_while_training,
    hostile_standin_search,
    run_search,
    search_real_trainer,
    standin_search_state,
)
from scheduler_contract import finished, wait_for
from slow_sbatch import kill_run
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.cluster import JobState, SlurmScheduler
from nas.cluster.proc import run_command
from nas.control import policy
from nas.pointdir import layout
from nas.record.state import PointStatus
from nas.record.store import load_state

pytestmark = pytest.mark.slurm


def job_names() -> list[str]:
    """Names of every job the cluster still lists, finished ones included."""
    done = run_command(["squeue", "-h", "-t", "all", "-o", "%j"], timeout=30)
    return done.stdout.split()


def experiment_name(state_path: Path) -> str:
    return policy.experiment_of(load_state(state_path), str(state_path)).experiment.name


@pytest.mark.slow
def test_search_runs_two_rank_jobs_of_the_real_trainer_to_its_budget(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # six ranks share the test machine's cores
    monkeypatch.chdir(tmp_path)
    state_path = search_real_trainer(tmp_path, "slurm")
    jobs = [p.job_id for p in load_state(state_path).points]
    assert len(set(jobs)) == 6
    states = SlurmScheduler(timeout=30).status(jobs)
    assert set(states.values()) == {JobState.COMPLETED}, states
    script = (layout.point_dir(layout.run_dir(state_path), 5) / layout.JOB_SCRIPT).read_text()
    assert "#SBATCH --ntasks-per-node=2" in script and "srun --nodes=1" in script


def test_scancel_of_a_running_candidate_leaves_it_cancelled_without_a_retry(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    scheduler = SlurmScheduler(timeout=30)

    def scancel(job: str) -> None:
        run_command(["scancel", job], timeout=30)
        assert wait_for(scheduler, job, finished, 60) is JobState.CANCELLED

    state_path, _ = cancel_while_training(tmp_path, "slurm", scheduler, scancel)
    prefix = f"{experiment_name(state_path)}-p0-"
    assert [n for n in job_names() if n.startswith(prefix)] == [f"{prefix}r0a1s0"]
    assert load_state(state_path).point(1).attempts == 1, "the search went on with the next point"


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
    run_search(state_path, tmp_path, poll=0.5, limit_s=120)
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


def test_a_value_no_directive_can_carry_is_refused_when_the_search_is_created(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused_directive(tmp_path, "slurm", "constraint", HOSTILE[0])


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
    assert report.done == report.points == 14
    assert set(report.recorded.values()) == {1}, "every measurement exactly once"
