"""A local `controller submit` refuses what `run --detach` refuses, with the same message.

It said "controller runs as pid N", exit 0, for a controller that died at
once in its log: on a search by hand (no `[model]`, no `[train]`) and while
another process held the state. Both commands now start the controller
through one function that checks first.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from experiment_support import FLOAT_BOX, command_experiment, experiment_toml, init_state, run

from nas.cluster.keepalive import PID, controller_dir
from nas.pointdir import layout
from nas.record.lock import FileLock

SPACE = {"x": FLOAT_BOX, "y": FLOAT_BOX}
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
CLUSTER = {"backend": "local", "max_concurrent_jobs": 1, "gpus_per_node": 0}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller started by mistake runs its jobs in the test's folder."""
    monkeypatch.chdir(tmp_path)


def refusals(capsys: pytest.CaptureFixture, state: Path) -> tuple[str, str]:
    """What `controller submit` and `run --detach` say on ``state``, each without its prefix;
    both must fail (exit 1) and leave no controller started."""
    said = []
    for argv in (("controller", "submit"), ("run", "--detach")):
        code, _, err = run(capsys, *argv, "--state", str(state))
        if code == 0:
            stop(state, int((controller_dir(state) / PID).read_text()))
        assert code == 1, err
        said.append(err.split(": error: ", 1)[1].strip())
    return said[0], said[1]


def test_a_search_by_hand_is_refused_as_run_detach_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init_state(tmp_path, capsys, experiment_toml("toy", SPACE))
    submitted, detached = refusals(capsys, state)
    assert submitted == detached and "[model]: missing table" in submitted


def test_a_state_in_use_is_refused_as_run_detach_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init_state(tmp_path, capsys, command_experiment("toy", SLEEP, SPACE, cluster=CLUSTER))
    lock = FileLock(state.resolve())  # a foreground `run` as far as the lock tells
    lock.acquire()
    try:
        submitted, detached = refusals(capsys, state)
    finally:
        lock.release()
    assert submitted == detached == f"{state} is in use by {lock.holder.describe()}"


def test_a_runnable_state_gets_its_controller(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init_state(tmp_path, capsys, command_experiment("toy", SLEEP, SPACE, cluster=CLUSTER))
    code, out, err = run(capsys, "controller", "submit", "--state", str(state), "--json")
    assert code == 0, err
    pid = json.loads(out)["pid"]
    try:
        assert f"controller runs as pid {pid}" in err
        assert (controller_dir(state) / PID).read_text().strip() == str(pid)
    finally:
        stop(state, pid)


def stop(state: Path, pid: int) -> None:
    """End the detached controller ``pid`` and the jobs it started."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _runs(pid):
        time.sleep(0.1)
    for pid_file in (layout.run_dir(state) / "jobs").glob("*/pid"):
        try:
            os.killpg(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _runs(pid: int) -> bool:
    """Whether ``pid`` still runs (a detached child nobody reaps stays a zombie: ended)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False
