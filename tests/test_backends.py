"""Every scheduler backend, the same tests: LSF, PBS and Flux doubles and the real Slurm cluster.

Each test runs once per row of :data:`conftest.BACKENDS` (the Slurm rows are
marked ``slurm``); what only one scheduler does lives in
``test_backend_<name>.py``. The rows prove, on every backend: the scheduler
contract; that the controller trains a point with two gloo ranks of the real
trainer (marked ``slow``); that a job cancelled by a person's own command
ends its point as cancelled without a retry; that hostile values in paths
travel through the job script and the scheduler as text; and that a value no
directive can carry is refused when the search is created.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import BACKENDS, RANK_PYTHON, Backend, cancel_by_hand
from controller_cluster_support import (
    HOSTILE,
    assert_refused_directive,
    cancel_while_training,
    hostile_standin_search,
    train_one_point,
)
from controller_support import experiment_text, init_state
from scheduler_contract import SchedulerContract, finished, wait_for

from nas.cluster import JobState, Scheduler
from nas.cluster.render import render_job_script, write_job_script
from nas.config import ClusterConfig, ConfigError
from nas.pointdir import layout
from nas.record.store import load_state
from nas.train.launch import port_for_job

ROOT = Path(__file__).resolve().parent.parent


class TestContract(SchedulerContract):
    """Submit, poll, fail, cancel and re-find jobs: :class:`SchedulerContract` on each row."""

    timeout = 180.0

    @pytest.fixture()
    def scheduler(self, backend: Backend) -> Scheduler:
        return backend.scheduler()

    @pytest.fixture()
    def fresh_scheduler(self, backend: Backend) -> Scheduler:
        return backend.scheduler()


#: The launcher that starts the ranks under each double (PALS mpiexec, Flux's own tasks).
LAUNCHERS = {"pbs": "pals", "flux": "flux"}


@pytest.mark.parametrize("backend", list(LAUNCHERS), indirect=True)
def test_a_rendered_script_starts_every_rank_where_its_launcher_would(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two nodes of two ranks: each rank finds its place and one rendezvous by the trainer's
    own rules, and the job sizes OMP_NUM_THREADS (4 cores, 2 ranks)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    point = tmp_path / "point 0"
    point.mkdir()
    python = tmp_path / "python"
    python.write_text(RANK_PYTHON.format(python=sys.executable, root=str(ROOT)))
    python.chmod(0o755)
    cluster = ClusterConfig(backend=backend.name, python=str(python), nodes=2, ranks_per_node=2,
                            cores_per_node=4, walltime_minutes=10)  # fmt: skip
    name = f"e2e-{backend.name}"
    text = render_job_script(backend.name, cluster=cluster, point_dir=point, job_name=name,
                             stdout_path="job.log")  # fmt: skip
    scheduler = backend.scheduler()
    job = scheduler.submit(write_job_script(point / "job.sh", text), job_name=name, cwd=point)
    state = wait_for(scheduler, job, finished, backend.job_seconds)
    assert state is JobState.COMPLETED, (point / "job.log").read_text()
    lines = [(point / f"rank-{r}").read_text() for r in range(4)]
    port = lines[0].split(":")[1].split()[0]
    launcher = LAUNCHERS[backend.name]
    assert lines == [f"{launcher} {r}/4 {r % 2} 127.0.0.1:{port} 2" for r in range(4)]
    if backend.name == "pbs":  # the job id PBS gives is the one the ranks derive the port from
        assert port == str(port_for_job(job))


#: What the job script of a 1-node, 2-rank job says on each backend: a directive and the launch.
TWO_RANK_SCRIPT = {
    "lsf": ("#BSUB -nnodes 1", "jsrun -n 1 -r 1 -a 2 -g 0 -c 2"),
    "pbs": ("#PBS -l select=1", "mpiexec -n 2 --ppn 2 --depth 1"),
    "flux": ("#flux: -N 1", "flux run -N 1 -n 2 -c 1"),
    "slurm": ("#SBATCH --ntasks-per-node=2", "srun --nodes=1"),
}


@pytest.mark.slow
def test_the_controller_trains_a_point_with_two_ranks_of_the_real_trainer(
    backend: Backend, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two ranks share the test machine's cores
    monkeypatch.chdir(tmp_path)
    state_path = train_one_point(tmp_path, backend.name, backend.scheduler())
    script = (layout.point_dir(layout.run_dir(state_path), 0) / layout.JOB_SCRIPT).read_text()
    directive, launch = TWO_RANK_SCRIPT[backend.name]
    assert directive in script and launch in script


#: What each scheduler's account of a job cancelled while running says.
CANCEL_REASON = {
    "lsf": "STAT=",
    "pbs": "substate=91",
    "flux": "result=CANCELED",
    "slurm": "CANCELLED",
}


def test_a_candidate_cancelled_by_hand_is_cancelled_without_a_retry(
    backend: Backend, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state_path, job = cancel_while_training(
        tmp_path, backend.name, backend.scheduler(), cancel_by_hand(backend)
    )
    after = load_state(state_path).point(1)
    assert after.attempts == 1 and after.job_id not in ("", job), "the search went on"
    said = CANCEL_REASON[backend.name]
    assert said in backend.scheduler().reason(job), "the scheduler's own account is kept"


#: The doubles; the real Slurm cluster runs the same search in test_backend_slurm.py
#: (``test_hostile_paths_and_directives_travel_as_text_to_slurm``) with a hostile directive
#: on top, so running it here as well would train the same search on Slurm twice.
DOUBLES = [name for name, row in BACKENDS.items() if row.fake_dir_variable]


@pytest.mark.parametrize("backend", DOUBLES, indirect=True)
def test_hostile_paths_travel_as_text_through_the_scheduler_and_its_launcher(
    backend: Backend, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quotes and ';' in the run folder, '$(...)' and backquotes in the interpreter's and
    the env file's paths: all stay text on their way to the ranks."""
    monkeypatch.chdir(tmp_path)
    hostile_standin_search(tmp_path, backend.name)


#: A free-text setting of each backend and a value that carries shell code into a directive.
DIRECTIVE_VALUES = {
    "lsf": ("alloc_flags", f"smt4 {HOSTILE[0]}"),
    "pbs": ("constraint", f"system=polaris {HOSTILE[0]}"),
    "flux": ("constraint", f"rabbit {HOSTILE[1]}"),
    "slurm": ("constraint", HOSTILE[0]),
}


@pytest.mark.parametrize("name", BACKENDS)
def test_a_value_no_directive_can_carry_is_refused_when_the_search_is_created(
    name: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused_directive(tmp_path, name, *DIRECTIVE_VALUES[name])


@pytest.mark.parametrize("name", BACKENDS)
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
    name: str, tmp_path, table: str, key: str, value: str
) -> None:
    tables: dict[str, dict] = {"cluster": {"backend": name}}
    tables.setdefault(table, {})[key] = value
    with pytest.raises(ConfigError, match=rf"\[{table}\] {key}: "):
        init_state(tmp_path, experiment_text(**tables))
    assert not (tmp_path / "state" / "ctl.h5").exists()
