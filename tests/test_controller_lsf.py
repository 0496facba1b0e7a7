"""The controller end to end on LSF, through the fake bsub/bjobs/bkill/jsrun of tests/fakes.

LSF is closed software, so its path runs against doubles that parse the real
argv and ``#BSUB`` lines and start the job script locally; the fake jsrun
starts the ranks with ``JSM_NAMESPACE_*`` set, as on a Summit-like machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from controller_cluster_support import (
    HOSTILE,
    assert_refused_directive,
    cancel_while_training,
    hostile_standin_search,
    search_real_trainer,
)
from controller_support import experiment_text, init_state
from test_schedulers import fake_lsf  # noqa: F401 - the fixture

from nas.cluster import JobState, LsfScheduler
from nas.cluster.proc import run_command
from nas.config import ConfigError
from nas.pointdir import layout
from nas.record.store import load_state


@pytest.mark.slow
def test_search_runs_two_jsrun_ranks_of_the_real_trainer_to_its_budget(
    fake_lsf: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # six ranks share the test machine's cores
    monkeypatch.chdir(tmp_path)
    state_path = search_real_trainer(tmp_path, "lsf")
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
    state_path, _ = cancel_while_training(
        tmp_path, "lsf", LsfScheduler(), lambda job: run_command(["bkill", job], timeout=30)
    )
    assert sorted(p.name for p in (fake_lsf / "jobs").iterdir()) == ["1", "2"]
    assert load_state(state_path).point(1).job_id == "2", "the search went on with the next point"


def test_hostile_paths_travel_as_text_through_bsub_and_jsrun(
    fake_lsf: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quotes and ';' in the run folder (a ``-cwd`` directive), '$(...)' and backquotes in
    the interpreter's and the env file's paths: all stay text."""
    monkeypatch.chdir(tmp_path)
    hostile_standin_search(tmp_path, "lsf")


def test_a_value_no_directive_can_carry_is_refused_when_the_search_is_created(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused_directive(tmp_path, "lsf", "alloc_flags", f"smt4 {HOSTILE[0]}")


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
