"""The controller end to end through a scheduler: the real Slurm cluster or a double.

Shared by test_backends.py and test_backend_slurm.py. A search here
runs the real trainer on tiny digits candidates with two ranks per job, or
the stand-in trainer of controller_support where only the path from the
config to the shell matters (hostile values in paths and directives).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state, objective, write_fake_trainer
from scheduler_contract import unique_name

from nas.cluster import Scheduler
from nas.config import ConfigError
from nas.control.loop import RunResult, run_controller
from nas.pointdir import layout
from nas.pointdir.layout import RESULT_FILE
from nas.pointdir.result import validate_result
from nas.record.state import PointStatus
from nas.record.store import load_state

#: Two ranks per job on one node; a job step of 2 x 1 core fits three times on the test node.
TWO_RANKS = {"nodes": 1, "ranks_per_node": 2, "cores_per_node": 2, "max_concurrent_jobs": 3}
#: A candidate trains on two batches of 8x8 digits: the job costs little beyond starting torch.
TINY_TRAINING = {
    "train": {"epochs": 1, "batch_per_gpu": 16, "log_every": 1, "max_steps_per_epoch": 2},
    "data": {"kind": "digits", "resolution": 8, "workers": 0, "pin_memory": False},
}
#: Seconds a test waits for what a quiet machine does in a few: a loaded one (load 20-30 on
#: two cores) is ten times slower, and a wait ends as soon as what it waits for happened.
PATIENCE = 600.0
#: Shell code that must stay text wherever it travels; running it leaves a file ``pwned``.
HOSTILE = ("$(touch pwned)", "`touch pwned`", "a'; touch pwned; echo 'x")


def real_search_state(folder: Path, backend: str, max_points: int, **cluster: object) -> Path:
    """A state for a search of the real trainer (two gloo ranks per job) through ``backend``.

    The design is the 2d+3 = 5 points of the 2-dim space; the rest of
    ``max_points`` are spline proposals, one per batch.
    """
    cluster = {
        "backend": backend,
        "python": sys.executable,
        "walltime_minutes": 10,
        "signal_seconds": 60,
        **TWO_RANKS,
        **cluster,
    }
    text = experiment_text(
        experiment={"name": "e2e", "max_points": max_points, "batch_size": 1, "tolerance": 0.0},
        cluster=cluster,
        **TINY_TRAINING,
    )
    return init_state(folder, text)


def standin_search_state(
    folder: Path, backend: str, trainer_dir: Path, behaviour: dict, **cluster: object
) -> Path:
    """A state whose 5 design points run the stand-in trainer (installed in ``trainer_dir``).

    Its experiment has a name of its own, so its job names are new to the scheduler.
    """
    python = write_fake_trainer(trainer_dir, behaviour)
    settings = {"backend": backend, "python": str(python), "walltime_minutes": 10,
                "signal_seconds": 60, "max_concurrent_jobs": 5, **cluster}  # fmt: skip
    name = unique_name("ctl")
    text = experiment_text(experiment={"name": name, "max_points": 5}, cluster=settings)
    return init_state(folder, text)


def run_search(state_path: Path, cwd: Path, *, poll: float, limit_s: float) -> RunResult:
    """Run the controller until it stops by itself; fail if that takes over ``limit_s``."""
    started = time.monotonic()
    outcome = run_controller(
        state_path,
        poll=poll,
        max_cycles=int(limit_s / poll),
        progress=lambda summary: print(summary.line()),
        cwd=cwd,
    )
    elapsed = time.monotonic() - started
    assert outcome.summary is not None and outcome.summary.stop is not None, (
        f"the search did not stop within {limit_s:.0f} s: {outcome.reason}"
    )
    print(f"search stopped after {elapsed:.1f} s, {outcome.cycles} cycles: {outcome.reason}")
    return outcome


def one_cycle(state_path: Path, cwd: Path) -> None:
    """One controller cycle: collect, propose and submit what is due, then return."""
    run_controller(state_path, poll=0, max_cycles=1, progress=lambda s: print(s.line()), cwd=cwd)


def train_one_point(folder: Path, backend: str, scheduler: Scheduler) -> Path:
    """Point 0 of a real-trainer search, trained by two gloo ranks through ``backend``.

    The controller submits it alone (one job at a time), polls and ingests
    it; the job of the next point, submitted in the same cycle, is cancelled.
    """
    state_path = real_search_state(folder, backend, max_points=6, max_concurrent_jobs=1)
    deadline = time.monotonic() + PATIENCE
    while load_state(state_path).point(0).status is not PointStatus.DONE:
        assert time.monotonic() < deadline, load_state(state_path).point(0).reason
        one_cycle(state_path, folder)
        time.sleep(0.5)
    for point in load_state(state_path).with_status(PointStatus.SUBMITTED, PointStatus.RUNNING):
        scheduler.cancel(point.job_id)
    point = load_state(state_path).point(0)
    result = validate_result(
        layout.point_dir(layout.run_dir(state_path), 0) / RESULT_FILE, 0, point.params
    )
    assert result.world_size == 2 and result.device == "cpu" and point.attempts == 1
    assert point.value == result.metrics["top1"]
    return state_path


def cancel_while_training(
    folder: Path, backend: str, scheduler: Scheduler, cancel: Callable[[str], None]
) -> tuple[Path, str]:
    """Submit point 0 of a stand-in search, ``cancel`` its job once it trains, run one cycle.

    Point 0 must then be cancelled after its one attempt, not retried. Jobs
    still active at the end are cancelled through ``scheduler``. Returns the
    state file and the cancelled job's id.
    """
    state_path = standin_search_state(
        folder, backend, folder / "fake", {"sleep": 120.0}, max_concurrent_jobs=1
    )
    runs = layout.point_dir(layout.run_dir(state_path), 0) / "fake-runs.txt"
    one_cycle(state_path, folder)
    job = load_state(state_path).point(0).job_id
    try:
        deadline = time.monotonic() + PATIENCE
        while not runs.exists():  # the trainer has started
            assert time.monotonic() < deadline, "the job never started its trainer"
            time.sleep(0.1)
        cancel(job)
        one_cycle(state_path, folder)
    finally:
        for point in load_state(state_path).with_status(PointStatus.SUBMITTED, PointStatus.RUNNING):
            scheduler.cancel(point.job_id)
    point = load_state(state_path).point(0)
    assert point.status is PointStatus.CANCELLED and point.attempts == 1
    assert point.reason == f"job {job}: the job was cancelled through the scheduler"
    return state_path, job


def hostile_folder(root: Path, *parts: str) -> Path:
    """``root/part/...``, created; the parts are folder names full of shell syntax."""
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True)
    return folder


def hostile_env_file(root: Path) -> Path:
    """An env file under hostile names; sourcing it leaves ``env-sourced`` in the job's folder."""
    folder = hostile_folder(root, f"env {HOSTILE[0]} {HOSTILE[1]}")
    path = folder / f"{HOSTILE[2]}.sh"
    path.write_text('printf ok >"$PWD/env-sourced"\n')
    return path


def assert_never_executed(*roots: Path) -> None:
    """No ``pwned`` file anywhere below ``roots``: no hostile value ran as code."""
    found = [str(p) for root in roots for p in root.rglob("pwned")]
    assert not found, f"shell code from the config was executed: {found}"


def hostile_standin_search(root: Path, backend: str, **cluster: object) -> Path:
    """A stand-in search under hostile paths through ``backend``, run to its end and checked.

    Quotes and ';' name the run folder, '$(...)' and backquotes the
    interpreter's and the env file's folders; ``cluster`` adds settings
    (hostile directives). Every job must have run and no value as code.
    """
    trainer = hostile_folder(root, f"bin {HOSTILE[0]}", HOSTILE[1])
    state_path = standin_search_state(
        hostile_folder(root, HOSTILE[2]),
        backend,
        trainer,
        {},
        env_file=str(hostile_env_file(root)),
        **cluster,
    )
    outcome = run_search(state_path, root, poll=0.2, limit_s=PATIENCE)
    assert outcome.ok, outcome.reason
    assert_standin_search_done(state_path)
    assert_never_executed(root)
    return state_path


def assert_refused_directive(folder: Path, backend: str, key: str, value: str) -> None:
    """``[cluster] key = value`` is refused when the search is created; nothing is written."""
    with pytest.raises(
        ConfigError, match=rf"\[cluster\] {key}: cannot go into a job-script directive"
    ):
        standin_search_state(folder, backend, folder / "fake", {}, **{key: value})
    assert not list(folder.rglob("*.h5")), "no state file was written"
    assert_never_executed(folder)


def assert_standin_search_done(state_path: Path) -> None:
    """The 5 design points measured by the stand-in, each job having sourced the env file."""
    state = load_state(state_path)
    assert [p.status for p in state.points] == [PointStatus.DONE] * 5
    assert all(p.value == pytest.approx(objective(p.params)) for p in state.points)
    run = layout.run_dir(state_path)
    for point in state.points:
        assert (layout.point_dir(run, point.id) / "env-sourced").read_text() == "ok"
