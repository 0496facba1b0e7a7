"""The controller end to end on LSF, through the fake bsub/bjobs/bkill/jsrun of tests/fakes.

LSF is closed software, so its path runs against doubles that parse the real
argv and ``#BSUB`` lines and start the job script locally; the fake jsrun
starts the ranks with ``JSM_NAMESPACE_*`` set, as on a Summit-like machine.
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
from controller_support import experiment_text, init_state
from test_schedulers import fake_lsf  # noqa: F401 - the fixture

from nas import layout
from nas.config import ConfigError
from nas.proc import run_command
from nas.runner import run_controller
from nas.schedulers import JobState, LsfScheduler
from nas.state import PointStatus
from nas.store import load_state

S = PointStatus


def one_cycle(state_path: Path, cwd: Path) -> None:
    run_controller(state_path, poll=0, max_cycles=1, progress=lambda s: print(s.line()), cwd=cwd)


@pytest.mark.slow
def test_search_runs_two_jsrun_ranks_of_the_real_trainer_to_its_budget(
    fake_lsf: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # six ranks share the test machine's cores
    monkeypatch.chdir(tmp_path)
    state_path = real_search_state(tmp_path, "lsf", max_points=6)
    started = time.monotonic()
    outcome = run_search(state_path, tmp_path, poll=0.5, limit_s=300)
    print(f"fake-LSF end-to-end search of 6 points: {time.monotonic() - started:.1f} s wall")
    assert_real_search_complete(state_path, outcome, world_size=2, max_points=6)
    jobs = [p.job_id for p in load_state(state_path).points]
    assert sorted(jobs, key=int) == [str(n) for n in range(1, 7)], "one bsub per point"
    assert set(LsfScheduler().status(jobs).values()) == {JobState.COMPLETED}
    script = (layout.point_dir(layout.run_dir(state_path), 5) / layout.JOB_SCRIPT).read_text()
    assert "#BSUB -nnodes 1" in script and "jsrun -n 1 -r 1 -a 2 -g 0 -c 2" in script


def test_bkill_of_a_running_candidate_leaves_it_cancelled_without_a_retry(
    fake_lsf: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    state_path = standin_search_state(
        tmp_path, "lsf", tmp_path / "fake", {"sleep": 120.0}, max_concurrent_jobs=1
    )
    folder = layout.point_dir(layout.run_dir(state_path), 0)
    one_cycle(state_path, tmp_path)
    job = load_state(state_path).point(0).job_id
    try:
        deadline = time.monotonic() + 30
        while not (folder / "fake-runs.txt").exists():  # the trainer has started
            assert time.monotonic() < deadline, "the job never started its trainer"
            time.sleep(0.1)
        run_command(["bkill", job], timeout=30)
        one_cycle(state_path, tmp_path)
    finally:
        for point in load_state(state_path).with_status(S.SUBMITTED, S.RUNNING):
            LsfScheduler().cancel(point.job_id)
    state = load_state(state_path)
    point = state.point(0)
    assert point.status is S.CANCELLED and point.attempts == 1
    assert point.reason == f"job {job}: the job was cancelled through the scheduler"
    assert sorted(p.name for p in (fake_lsf / "jobs").iterdir()) == ["1", "2"]
    assert state.point(1).job_id == "2", "the search went on with the next point"


def test_hostile_paths_travel_as_text_through_bsub_and_jsrun(
    fake_lsf: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quotes and ';' in the run folder (a ``-cwd`` directive), '$(...)' and backquotes in
    the interpreter's and the env file's paths: all stay text."""
    monkeypatch.chdir(tmp_path)
    trainer = hostile_folder(tmp_path, f"bin {HOSTILE[0]}", HOSTILE[1])
    state_path = standin_search_state(
        hostile_folder(tmp_path, HOSTILE[2]),
        "lsf",
        trainer,
        {},
        env_file=str(hostile_env_file(tmp_path)),
    )
    outcome = run_search(state_path, tmp_path, poll=0.2, limit_s=120)
    assert outcome.ok, outcome.reason
    assert_standin_search_done(state_path)
    assert_never_executed(tmp_path)


def test_a_value_no_directive_can_carry_is_refused_when_the_search_is_created(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=r"\[cluster\] alloc_flags: cannot go into a job-script directive"
    ):
        standin_search_state(
            tmp_path, "lsf", tmp_path / "fake", {}, alloc_flags=f"smt4 {HOSTILE[0]}"
        )
    assert not list(tmp_path.rglob("*.h5")), "no state file was written"
    assert_never_executed(tmp_path)


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("experiment", "name", HOSTILE[2]),
        ("cluster", "account", HOSTILE[0]),
        ("cluster", "queue", HOSTILE[1]),
        ("cluster", "python", "python3\ntouch pwned"),
    ],
)
def test_a_hostile_name_is_refused_when_the_search_is_created(
    tmp_path: Path, table: str, key: str, value: str
) -> None:
    tables: dict[str, dict] = {"cluster": {"backend": "lsf"}}
    tables.setdefault(table, {})[key] = value
    with pytest.raises(ConfigError, match=rf"\[{table}\] {key}: "):
        init_state(tmp_path, experiment_text(**tables))
    assert not (tmp_path / "state" / "ctl.h5").exists()
