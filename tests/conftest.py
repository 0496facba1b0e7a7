"""The scheduler backends every backend test runs over: one table, one fixture; and the
one real run of ``splinenas demo`` that the demo and README tests share (``demo_run``).

LSF, PBS and Flux run against the doubles in ``tests/fakes`` (programs on
PATH that keep their state in a folder, parse real argv and directives and
run the job script locally); Slurm is the real one-node cluster of
``tests/slurm/cluster.sh``, so its rows are marked ``slurm``. A test takes
the ``backend`` fixture to run on every one of them, or picks some with
``@pytest.mark.parametrize("backend", [...], indirect=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from demo_support import DemoRun, run_demo
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.cluster import FluxScheduler, LsfScheduler, PbsScheduler, Scheduler, SlurmScheduler

FAKES = Path(__file__).resolve().parent / "fakes"


#: The suite runs on two pytest-xdist workers (``-n 2 --dist loadgroup`` in pyproject.toml):
#: most of its time is spent waiting on schedulers and subprocesses, not computing. A session
#: fixture is made once per worker, so the tests of each one-per-suite resource run on one
#: worker: one Slurm cluster (a second would fight the first over its ports and state
#: folder), one demo training. Keyed by the fixture; the value is the xdist group.
SHARED_FIXTURES = {"slurm_cluster": "slurm", "demo_run": "demo"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that uses a shared session fixture with that fixture's xdist group.

    Before xdist's own hook, which reads the marks (it appends ``@group`` to the node
    ids it schedules by). A Slurm row of the ``backend`` fixture asks for the cluster
    only at run time, so its ``slurm`` mark counts too.
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("slurm") is not None:
            names.add("slurm_cluster")
        for fixture, group in SHARED_FIXTURES.items():
            if fixture in names:
                item.add_marker(pytest.mark.xdist_group(group))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a grouped test that xdist did not group, before it starts a second cluster.

    ``loadgroup`` is set on the workers of a ``--dist loadgroup`` run; a pytest or
    pytest-xdist version whose node ids do not carry the group would spread the tests.
    """
    mark = item.get_closest_marker("xdist_group")
    grouped = mark is None or item.nodeid.endswith(f"@{mark.args[0]}")
    if getattr(item.config.option, "loadgroup", False) and not grouped:
        pytest.fail(
            f"pytest-xdist did not group this test with the others of {mark.args[0]!r} "
            f"(pytest {pytest.__version__}): install the versions setup.cfg's [test] extra "
            "allows, or run the suite with -n 0",
            pytrace=False,
        )


#: Stands in for python under a launcher: writes what the trainer's own rules make of its
#: place (format it with ``python``, the interpreter, and ``root``, this checkout).
RANK_PYTHON = """#!{python}
import os, sys
sys.path.insert(0, {root!r})
from nas.train.launch import detect
env = detect(os.environ)
with open(f"rank-{{env.rank}}", "w") as out:
    out.write(f"{{env.launcher}} {{env.rank}}/{{env.world_size}} {{env.local_rank}} "
              f"{{env.master_addr}}:{{env.master_port}} {{os.environ['OMP_NUM_THREADS']}}")
"""


@dataclass(frozen=True)
class Backend:
    """One scheduler as the tests drive it, and what differs from the others."""

    name: str
    #: The backend's scheduler class (a fresh instance is a restarted controller).
    kind: type[Scheduler]
    #: What a person types to cancel job ``ID`` (the id is appended).
    cancel_argv: tuple[str, ...]
    #: The variable naming the double's state folder; None: a real scheduler.
    fake_dir_variable: str | None
    #: Seconds a trivial job may take from submission to its final state.
    job_seconds: float
    #: Where the double keeps its state (set by the fixture; None for a real scheduler).
    fake_dir: Path | None = None

    def scheduler(self) -> Scheduler:
        """A new instance, as a restarted controller would make."""
        return self.kind(timeout=60)


#: name -> (class, cancel command, the double's state variable, seconds a trivial job takes).
BACKENDS: dict[str, Backend] = {
    "lsf": Backend("lsf", LsfScheduler, ("bkill",), "FAKE_LSF_DIR", 120.0),
    "pbs": Backend("pbs", PbsScheduler, ("qdel",), "FAKE_PBS_DIR", 120.0),
    "flux": Backend("flux", FluxScheduler, ("flux", "cancel"), "FAKE_FLUX_DIR", 120.0),
    "slurm": Backend("slurm", SlurmScheduler, ("scancel",), None, 180.0),
}

#: The rows of every backend test: the doubles, and the real Slurm cluster when it can start.
BACKEND_ROWS = [
    *(name for name in BACKENDS if BACKENDS[name].fake_dir_variable),
    pytest.param("slurm", marks=pytest.mark.slurm),
]


@pytest.fixture(params=BACKEND_ROWS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    """A scheduler backend ready to take jobs: its double on PATH, or the real cluster up."""
    row = BACKENDS[request.param]
    if row.fake_dir_variable is None:
        request.getfixturevalue("slurm_cluster")
        return row
    folder = tmp_path / f"fake-{row.name}"
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")
    monkeypatch.setenv(row.fake_dir_variable, str(folder))
    return Backend(**{**vars(row), "fake_dir": folder})


def cancel_by_hand(backend: Backend) -> Callable[[str], None]:
    """Cancel a job the way a person would, with the scheduler's own command, and wait
    until the scheduler has it cancelled (Slurm's ``scancel`` only asks)."""
    from scheduler_contract import finished, wait_for

    from nas.cluster import JobState
    from nas.cluster.proc import run_command

    def cancel(job: str) -> None:
        run_command([*backend.cancel_argv, job], timeout=120)
        assert wait_for(backend.scheduler(), job, finished, backend.job_seconds) is (
            JobState.CANCELLED
        )

    return cancel


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``splinenas demo`` in an empty folder, paused once and resumed: trained once per suite."""
    return run_demo(tmp_path_factory.mktemp("quickstart"))
