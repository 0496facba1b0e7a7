"""The controller end to end through a scheduler: the real Slurm cluster or fake LSF.

Shared by test_controller_slurm.py and test_controller_lsf.py. A search here
runs the real trainer on tiny digits candidates with two ranks per job, or
the stand-in trainer of controller_support where only the path from the
config to the shell matters (hostile values in paths and directives).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state, objective, write_fake_trainer
from scheduler_contract import unique_name

from nas import layout
from nas.runner import RunResult, run_controller
from nas.state import PointStatus
from nas.store import load_state
from nas.train import RESULT_FILE
from nas.train.result import validate_result

#: Two ranks per job on one node; a job step of 2 x 1 core fits three times on the test node.
TWO_RANKS = {"nodes": 1, "ranks_per_node": 2, "cores_per_node": 2, "max_concurrent_jobs": 3}
#: A candidate trains on two batches of 8x8 digits: the job costs little beyond starting torch.
TINY_TRAINING = {
    "train": {"epochs": 1, "batch_per_gpu": 16, "log_every": 1, "max_steps_per_epoch": 2},
    "data": {"kind": "digits", "resolution": 8, "workers": 0, "pin_memory": False},
}
#: Shell code that must stay text wherever it travels; running it leaves a file ``pwned``.
HOSTILE = ("$(touch pwned)", "`touch pwned`", "a'; touch pwned; echo 'x")


def real_search_state(folder: Path, backend: str, max_points: int) -> Path:
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


def assert_real_search_complete(
    state_path: Path, outcome: RunResult, *, world_size: int, max_points: int
) -> None:
    """Every point done once, from a valid result file of ``world_size`` ranks."""
    state = load_state(state_path)
    assert outcome.ok, outcome.reason
    assert "max_points" in outcome.reason or "converged" in outcome.reason, outcome.reason
    assert [p.status for p in state.points] == [PointStatus.DONE] * len(state.points)
    assert [p.origin for p in state.points[:5]] == ["initial"] * 5
    if "max_points" in outcome.reason:
        assert len(state.points) == max_points
    assert any(p.origin == "incremental" for p in state.points), "no spline proposal was trained"
    assert state.fits, "proposals record their fit"
    run = layout.run_dir(state_path)
    for point in state.points:
        result = validate_result(layout.point_dir(run, point.id) / RESULT_FILE, point.id,
                                 point.params)  # fmt: skip
        assert result.world_size == world_size and result.device == "cpu"
        assert point.value == result.metrics["top1"]
        assert point.attempts == 1, f"point {point.id} needed {point.attempts} attempts"
    recorded = [e.point_id for e in state.events if e.kind == "record"]
    assert sorted(recorded) == [p.id for p in state.points], "every measurement exactly once"


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


def assert_standin_search_done(state_path: Path) -> None:
    """The 5 design points measured by the stand-in, each job having sourced the env file."""
    state = load_state(state_path)
    assert [p.status for p in state.points] == [PointStatus.DONE] * 5
    assert all(p.value == pytest.approx(objective(p.params)) for p in state.points)
    run = layout.run_dir(state_path)
    for point in state.points:
        assert (layout.point_dir(run, point.id) / "env-sourced").read_text() == "ok"
