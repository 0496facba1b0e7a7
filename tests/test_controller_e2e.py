"""The controller with the real trainer on the long-tailed digits, on the local backend."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state

from nas.commands.main import main
from nas.config import parse_experiment
from nas.control.loop import run_controller
from nas.pointdir import layout
from nas.record.state import PointStatus
from nas.record.store import StateStore, load_state

pytestmark = pytest.mark.slow
S = PointStatus
TINY_TRAINING = {"epochs": 1, "max_steps_per_epoch": 3, "batch_per_gpu": 16, "log_every": 1}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent trainings on few cores: one intra-op thread each is fastest."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_search_with_the_real_trainer_runs_design_and_proposals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = experiment_text(
        experiment={"max_points": 6, "batch_size": 1, "tolerance": 0.5},
        train=TINY_TRAINING,
        cluster={"max_concurrent_jobs": 2},
    )
    state_path = init_state(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--state", str(state_path), "--poll", "0.2"]) == 0
    state = load_state(state_path)
    assert {p.status for p in state.points} == {S.DONE}
    assert 5 < len(state.points) <= 6  # the 5-point design of a square, then proposals
    assert all(0.0 <= p.value <= 100.0 for p in state.points)
    incremental = [p for p in state.points if p.origin == "incremental"]
    assert incremental and all(p.predicted is not None for p in incremental)
    for point in state.points:
        folder = layout.point_dir(layout.run_dir(state_path), point.id)
        assert (folder / "result.json").is_file()
        assert not (folder / "checkpoint.pt").exists()  # deleted once measured


def trainer_pid(folder: Path) -> int | None:
    """The trainer process of a point folder, found through /proc."""
    needle = str(folder).encode()
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"nas.train" in argv and needle in argv:
            return int(proc.name)
    return None


def test_time_limit_signal_makes_a_segment_and_the_next_one_completes(tmp_path: Path) -> None:
    """The scheduler's warning before the time limit (Slurm --signal USR2) ends a segment."""
    text = experiment_text(
        experiment={"max_points": 1},
        train={**TINY_TRAINING, "epochs": 3, "max_steps_per_epoch": 12},
    )
    experiment = parse_experiment(text, "test.toml")
    state_path = tmp_path / "state" / "ctl.h5"
    with StateStore.create(state_path, experiment) as store:
        store.state.add_point({"g1": 8, "g2": 8}, "manual", 0)
        store.commit()
    folder = layout.point_dir(layout.run_dir(state_path), 0)
    outcome: list = []
    thread = threading.Thread(
        target=lambda: outcome.append(
            run_controller(state_path, poll=0.2, progress=lambda s: None, cwd=tmp_path)
        )
    )
    thread.start()
    log = folder / "logs" / "ctl-p0-r0a1s0.log"
    deadline = time.time() + 180
    while not (log.exists() and "step 2/" in log.read_text()):
        assert time.time() < deadline, "the first segment never started training"
        time.sleep(0.1)
    pid = trainer_pid(folder)
    assert pid is not None
    os.kill(pid, signal.SIGUSR2)
    thread.join(timeout=300)
    assert outcome and outcome[0].ok, outcome
    point = load_state(state_path).point(0)
    assert point.status is S.DONE and (point.attempts, point.segment) == (1, 1)
    assert (folder / "progress.ctl-p0-r0a1s0-1.json").is_file()
    assert "resuming after epoch" in (folder / "logs" / "ctl-p0-r0a1s1.log").read_text()
