"""The controller end to end on the real one-node Slurm cluster (tests/slurm/cluster.sh).

A search of the real trainer with two gloo ranks per job started by srun, a
candidate cancelled by a person with scancel, and hostile config values on
their way from the experiment through the job script to sbatch.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from controller_cluster_support import (
    HOSTILE,
    assert_never_executed,
    assert_real_search_complete,
    assert_standin_search_done,
    hostile_env_file,
    hostile_folder,
    real_search_state,
    run_search,
    standin_search_state,
)
from scheduler_contract import finished, wait_for
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas import layout, study
from nas.config import ConfigError
from nas.proc import run_command
from nas.runner import run_controller
from nas.schedulers import JobState, SlurmScheduler
from nas.state import PointStatus
from nas.store import load_state

pytestmark = pytest.mark.slurm
S = PointStatus


def job_names() -> list[str]:
    """Names of every job the cluster still lists, finished ones included."""
    done = run_command(["squeue", "-h", "-t", "all", "-o", "%j"], timeout=30)
    return done.stdout.split()


def experiment_name(state_path: Path) -> str:
    return study.experiment_of(load_state(state_path), str(state_path)).experiment.name


def one_cycle(state_path: Path, cwd: Path) -> None:
    run_controller(state_path, poll=0, max_cycles=1, progress=lambda s: print(s.line()), cwd=cwd)


@pytest.mark.slow
def test_search_runs_two_rank_jobs_of_the_real_trainer_to_its_budget(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # six ranks share the test machine's cores
    monkeypatch.chdir(tmp_path)
    state_path = real_search_state(tmp_path, "slurm", max_points=6)
    started = time.monotonic()
    outcome = run_search(state_path, tmp_path, poll=0.5, limit_s=300)
    print(f"slurm end-to-end search of 6 points: {time.monotonic() - started:.1f} s wall")
    assert_real_search_complete(state_path, outcome, world_size=2, max_points=6)
    state = load_state(state_path)
    jobs = [p.job_id for p in state.points]
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
    state_path = standin_search_state(
        tmp_path, "slurm", tmp_path / "fake", {"sleep": 120.0}, max_concurrent_jobs=1
    )
    folder = layout.point_dir(layout.run_dir(state_path), 0)
    scheduler = SlurmScheduler(timeout=30)
    one_cycle(state_path, tmp_path)
    job = load_state(state_path).point(0).job_id
    try:
        deadline = time.monotonic() + 60
        while not (folder / "fake-runs.txt").exists():  # the trainer has started
            assert time.monotonic() < deadline, "the job never started its trainer"
            time.sleep(0.2)
        run_command(["scancel", job], timeout=30)
        assert wait_for(scheduler, job, finished, 60) is JobState.CANCELLED
        one_cycle(state_path, tmp_path)
    finally:
        for point in load_state(state_path).with_status(S.SUBMITTED, S.RUNNING):
            scheduler.cancel(point.job_id)
    state = load_state(state_path)
    point = state.point(0)
    assert point.status is S.CANCELLED and point.attempts == 1
    assert point.reason == f"job {job}: the job was cancelled through the scheduler"
    prefix = f"{experiment_name(state_path)}-p0-"
    assert [n for n in job_names() if n.startswith(prefix)] == [f"{prefix}r0a1s0"]
    assert state.point(1).attempts == 1, "the search went on with the next point"


def test_hostile_paths_and_directives_travel_as_text_to_slurm(
    slurm_cluster: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quotes and ';' in the run folder, '$(...)' and backquotes in the interpreter's and
    the env file's paths, command substitution in a free directive: all stay text."""
    monkeypatch.chdir(tmp_path)
    trainer = hostile_folder(tmp_path, f"bin {HOSTILE[0]}", HOSTILE[1])
    state_path = standin_search_state(
        hostile_folder(tmp_path, HOSTILE[2]),
        "slurm",
        trainer,
        {},
        env_file=str(hostile_env_file(tmp_path)),
        extra_directives=[f'--comment="{HOSTILE[0]} {HOSTILE[1]}"'],
    )
    outcome = run_search(state_path, tmp_path, poll=0.2, limit_s=120)
    assert outcome.ok, outcome.reason
    assert_standin_search_done(state_path)
    assert_never_executed(tmp_path)
    job = load_state(state_path).point(0).job_id
    shown = run_command(["scontrol", "show", "job", "-o", job], timeout=30).stdout
    assert f"Comment={HOSTILE[0]} {HOSTILE[1]} " in shown


def test_a_value_no_directive_can_carry_is_refused_when_the_search_is_created(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=r"\[cluster\] constraint: cannot go into a job-script directive"
    ):
        standin_search_state(tmp_path, "slurm", tmp_path / "fake", {}, constraint=HOSTILE[0])
    assert not list(tmp_path.rglob("*.h5")), "no state file was written"
    assert_never_executed(tmp_path)
