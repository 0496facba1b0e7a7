"""No operator request is left behind by a controller that stops as it is posted.

A request queued during the controller's last cycle, after its look at the
inbox and before it let the lock go, waited in the inbox for some later run
while the command had said the running controller applies it. A request the
command took back because the controller stopped meanwhile was deleted as an
applied one is, and a controller that applied it as it stopped would have had
it applied a second time by the command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_support import kill_group, wait_for
from experiment_support import FLOAT_BOX, command_experiment, init_state, run

from nas.control import inbox, liveness
from nas.control.cycle import CycleSummary
from nas.control.loop import run_controller
from nas.pointdir import layout
from nas.record.state import PointStatus
from nas.record.store import load_state

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"x": FLOAT_BOX, "y": FLOAT_BOX}
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def search(tmp_path: Path, capsys: pytest.CaptureFixture) -> Iterator[Path]:
    """A search whose points run a 60 s job, one at a time; its jobs are killed at the end."""
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    cluster = {"backend": "local", "max_concurrent_jobs": 1, "gpus_per_node": 0}
    state = init_state(tmp_path, capsys, command_experiment("ctl", sleep, SPACE, cluster=cluster))
    yield state
    for pid_file in (layout.run_dir(state) / "jobs").glob("*/pid"):
        kill_group(pid_file)


def waiting(state: Path) -> list[Path]:
    return sorted(layout.inbox_dir(layout.run_dir(state)).glob("*.json"))


def requests(state: Path) -> list[str]:
    return [e.message for e in load_state(state).events if e.kind == "request"]


def splinenas(*argv: str) -> subprocess.CompletedProcess:
    """The real CLI in its own process, as a person at another terminal runs it."""
    command = [sys.executable, "-m", "nas", *argv]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)


def test_a_request_posted_in_the_last_cycle_is_applied_before_the_lock_goes(
    search: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    stop = threading.Event()
    said: list[subprocess.CompletedProcess] = []

    def last_cycle(summary: CycleSummary) -> None:
        """After the cycle has read the inbox: a `cancel` comes in, then the stop."""
        said.append(splinenas("cancel", "--state", str(search), "4"))
        stop.set()

    run_controller(search, poll=0.05, progress=last_cycle, stop_event=stop, cwd=tmp_path)
    assert said[0].returncode == 0, said[0].stderr
    assert said[0].stderr.startswith("queued for the running controller"), said[0].stderr
    assert load_state(search).point(4).status is PointStatus.CANCELLED
    assert waiting(search) == []
    code, out, err = run(capsys, "status", "--state", str(search), "--json")
    assert code == 0, err
    assert json.loads(out)["controller"]["requests_waiting"] == 0
    assert len(requests(search)) == 1


@pytest.fixture
def controller(search: Path, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real ``splinenas run`` on the search, stopped at the end if the test did not stop it."""
    argv = [sys.executable, "-m", "nas", "run", "--state", str(search), "--poll", "0.2"]
    process = subprocess.Popen(argv, cwd=tmp_path, env=ENV, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: liveness.controller_holder(search) is not None)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_a_request_the_stopping_controller_applies_is_applied_once(
    search: Path,
    controller: subprocess.Popen,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    post = inbox.post

    def post_then_stop(run_dir: Path, request: dict) -> Path:
        path = post(run_dir, request)
        controller.send_signal(signal.SIGTERM)  # it stops before the command looks again
        controller.wait(timeout=60)
        return path

    monkeypatch.setattr(inbox, "post", post_then_stop)
    code, out, err = run(capsys, "cancel", "--state", str(search), "4", "--json")
    assert code == 0, err
    assert json.loads(out)["applied"], out
    assert f"pid {controller.pid}" in err and "as it stopped" in err, err
    assert load_state(search).point(4).status is PointStatus.CANCELLED
    assert waiting(search) == []
    assert len(requests(search)) == 1, requests(search)


def test_a_request_taken_back_is_filed_as_withdrawn_not_as_done(
    search: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder stops as the request is posted without a look at the inbox: the command
    applies it itself, and the request file is set aside as withdrawn, saying why."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(search)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    post = inbox.post
    posted: list[Path] = []

    def post_then_stop(run_dir: Path, request: dict) -> Path:
        posted.append(post(run_dir, request))
        holder.communicate("")
        return posted[0]

    monkeypatch.setattr(inbox, "post", post_then_stop)
    code, out, err = run(capsys, "cancel", "--state", str(search), "3", "--json")
    assert code == 0, err
    assert json.loads(out)["applied"]
    assert load_state(search).point(3).status is PointStatus.CANCELLED
    assert waiting(search) == [] and not posted[0].exists()
    withdrawn = layout.inbox_dir(layout.run_dir(search)) / "withdrawn"
    assert [p.name for p in withdrawn.glob("*.json")] == [posted[0].name]
    reason = (withdrawn / f"{posted[0].name}.reason.txt").read_text()
    assert "stopped" in reason and "applied by the command" in reason, reason
    assert len(requests(search)) == 1


#: A controller's stand-in that stops (heartbeat, then lock) without a look at the inbox.
HOLDER = """
import sys
from nas.control.liveness import Pulse
from nas.record.lock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
pulse = Pulse(sys.argv[1], 60.0)
print("locked", flush=True)
sys.stdin.read()
pulse.stopped("converged")
lock.release()
"""
