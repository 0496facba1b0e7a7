"""`status` says whether a controller holds the state now, how it runs, and when it last worked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state, write_fake_trainer

from nas.cluster.keepalive import MARKER, PID, Incarnation, controller_dir
from nas.commands.main import main
from nas.control import liveness
from nas.control.loop import run_controller
from nas.pointdir import layout
from nas.record.lock import FileLock, lock_path


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 0.0})
    text = experiment_text(cluster={"python": str(fake)}, experiment={"max_points": 5})
    return init_state(tmp_path, text)


def status(capsys: pytest.CaptureFixture, state: Path) -> tuple[dict, str]:
    """The controller part of ``status --json``, and the last line of the text status."""
    capsys.readouterr()
    assert main(["status", "--state", str(state), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)["controller"]
    assert main(["status", "--state", str(state)]) == 0
    return doc, capsys.readouterr().out.strip().splitlines()[-1]


def hold(state: Path, poll: float = 60.0, last_cycle: float | None = None) -> FileLock:
    """This process as a controller that holds ``state`` and last cycled at ``last_cycle``."""
    lock = FileLock(state)
    lock.acquire()
    me = lock.holder
    beat = liveness.Heartbeat(me.host, me.pid, me.started, poll, 3, last_cycle or time.time())
    liveness.beat(state, beat)
    return lock


def test_a_new_state_has_never_had_a_controller(
    state_path: Path, capsys: pytest.CaptureFixture
) -> None:
    doc, line = status(capsys, state_path)
    assert doc["running"] is False and doc["since"] is None
    assert line == "controller: none; none has run on this state"


def test_a_foreground_controller_is_named_with_its_pid_host_and_last_cycle(
    state_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lock = hold(state_path)
    try:
        doc, line = status(capsys, state_path)
    finally:
        lock.release()
    assert doc["running"] and doc["command"] == "run" and doc["mode"] == "foreground"
    assert (doc["pid"], doc["host"], doc["checked_by"]) == (os.getpid(), os.uname().nodename, "pid")
    assert doc["since"] == lock.holder.started and doc["last_cycle"] >= doc["since"]
    assert not doc["stale"]
    assert line.startswith(f"controller: running, pid {os.getpid()} on {os.uname().nodename}")
    assert "in the foreground" in line and "last cycle" in line


def test_a_detached_and_a_keepalive_controller_say_so(
    state_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lock = hold(state_path)
    folder = controller_dir(state_path)
    try:
        (folder / PID).write_text(f"{os.getpid()}\n")
        doc, line = status(capsys, state_path)
        assert doc["mode"] == "detached" and "detached (run --detach)" in line
        me = lock.holder
        Incarnation("4242", me.host, me.pid, me.started).write(folder / MARKER)
        doc, line = status(capsys, state_path)
        assert (doc["mode"], doc["job_id"]) == ("keep-alive", "4242")
        assert "as keep-alive job 4242" in line
    finally:
        lock.release()


def test_an_old_heartbeat_is_named_stale(state_path: Path, capsys: pytest.CaptureFixture) -> None:
    long_ago = time.time() - liveness.stale_after(60.0) - 60.0
    lock = hold(state_path, poll=60.0, last_cycle=long_ago)
    try:
        doc, line = status(capsys, state_path)
    finally:
        lock.release()
    assert doc["running"] and doc["stale"]
    assert "STALE heartbeat" in line and "--poll 60 s" in line


def test_a_controller_on_another_host_is_judged_by_its_heartbeat(state_path: Path) -> None:
    now = time.time()
    lock_path(state_path).write_text(json.dumps({"host": "login9", "pid": 1, "started": now - 50}))
    liveness.beat(state_path, liveness.Heartbeat("login9", 1, now - 50, 30.0, 2, now - 10))
    doc = liveness.liveness(state_path, now)
    assert doc["running"] and doc["checked_by"] == "heartbeat" and not doc["stale"]
    later = now + liveness.stale_after(30.0) + 1
    assert liveness.liveness(state_path, later)["stale"]


def test_a_lock_left_by_a_dead_process_means_no_controller(
    state_path: Path, capsys: pytest.CaptureFixture
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    pid, host, started = int(gone.stdout), os.uname().nodename, time.time() - 100
    lock_path(state_path).write_text(json.dumps({"host": host, "pid": pid, "started": started}))
    liveness.beat(state_path, liveness.Heartbeat(host, pid, started, 60.0, 7, started + 50))
    doc, line = status(capsys, state_path)
    assert doc["running"] is False and doc["killed"] is True
    assert doc["lock_left_by"]["pid"] == pid and doc["since"] == pytest.approx(started + 50)
    assert f"pid {pid} on {host} is gone but left its lock" in line and "it was killed" in line


def test_after_an_orderly_stop_status_says_since_when_and_why(
    state_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    before = time.time()
    run_controller(state_path, poll=0.05, max_cycles=1, progress=lambda s: None, cwd=tmp_path)
    doc, line = status(capsys, state_path)
    assert doc["running"] is False and doc["killed"] is False and doc["since"] >= before
    assert doc["last"]["pid"] == os.getpid() and doc["last"]["cycles"] == 1
    assert line.startswith("controller: none since ") and "stopped: 1 cycle(s) done" in line


def test_a_detached_controller_is_running_then_killed(
    state_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Through the real CLI: ``run --detach``, ``status`` while it runs, ``kill -9``, ``status``."""
    write_fake_trainer(tmp_path / "fake", {"sleep": 30.0})  # keeps the search busy
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state_path), "--poll", "0.2"]
    started = subprocess.run([*argv, "--detach", "--json"], cwd=tmp_path, capture_output=True)
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    try:
        doc = _wait_for(lambda: _cycled(liveness.liveness(state_path)))
        assert (doc["pid"], doc["mode"]) == (pid, "detached")
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: _gone(pid))
        for job_pid in (layout.run_dir(state_path) / "jobs").glob("*/pid"):
            _kill_group(job_pid)  # the stand-in trainers it started
    doc, line = status(capsys, state_path)
    assert doc["running"] is False and doc["killed"] and doc["lock_left_by"]["pid"] == pid
    assert "it was killed" in line


def _cycled(doc: dict) -> dict | None:
    return doc if doc["running"] and doc["last_cycle"] is not None else None


def _wait_for(check: Callable[[], object]) -> object:
    deadline = time.monotonic() + 120
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def _gone(pid: int) -> bool:
    """The process ended (a zombie of a detached child no one waits for counts as ended)."""
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return True


def _kill_group(pid_file: Path) -> None:
    try:
        os.killpg(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    except (OSError, ValueError):
        pass
