"""What `status` and `run` tell a person after a controller is gone, or cannot start.

`status` said "it was killed" of every controller that stopped without writing
why, also of one that ended by an error it could not write down, and sent a
person to `splinenas unlock` for a lock that `run` on the same host takes over
by itself. `run` on a search without `[model]` named that table only, not
`[train] command`, the other way to train its points.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_control_leftovers_inbox
from controller_support import wait_for
from experiment_support import FLOAT_BOX, experiment_toml, init_state, run

from nas.cluster.keepalive import LOG, controller_dir
from nas.control import liveness
from nas.record.lock import FileLock, hostname, lock_path

#: The fixture of a search whose points run 60 s jobs, one at a time.
search = test_control_leftovers_inbox.search
ROOT = Path(__file__).resolve().parents[1]
SPACE = {"x": FLOAT_BOX, "y": FLOAT_BOX}
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def status_line(capsys: pytest.CaptureFixture, state: Path) -> str:
    """The controller line of the text ``status`` (its last)."""
    code, out, err = run(capsys, "status", "--state", str(state))
    assert code == 0, err
    return out.strip().splitlines()[-1]


def splinenas(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nas", *argv]
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60)


def gone(pid: int) -> bool:
    """The process ended (a detached child nobody reaps stays a zombie)."""
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return True


def test_a_controller_killed_without_a_word_is_named_honestly_and_run_takes_its_lock(
    search: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Through the real CLI: ``run --detach``, ``kill -9``, ``status``, then ``run --once``."""
    started = splinenas(tmp_path, "run", "--state", str(search), "--poll", "0.2", "--detach")
    assert started.returncode == 0, started.stderr
    pid = int((controller_dir(search) / "controller.pid").read_text())
    try:
        wait_for(lambda: liveness.liveness(search).get("last_cycle") is not None, 60)
    finally:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gone(pid), 60)
    line = status_line(capsys, search)
    assert "it stopped without writing why" in line, line
    assert "or it ended by an error it could not record" in line, line
    assert f"see its log {controller_dir(search) / LOG}" in line, line
    assert "unlock" not in line, line
    assert f"`splinenas run --state {search}` takes its lock over by itself" in line, line
    again = splinenas(tmp_path, "run", "--state", str(search), "--once")
    assert again.returncode == 0, again.stderr
    assert "taking over stale lock" in again.stderr
    assert not lock_path(search).exists()


def test_a_controller_in_a_terminal_that_died_is_sent_to_that_terminal(
    search: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [sys.executable, "-c", "import os; print(os.getpid())"]
    gone_ = subprocess.run(argv, text=True, capture_output=True)
    pid, started = int(gone_.stdout), time.time() - 100
    beat = liveness.Heartbeat(hostname(), pid, started, 60.0, 7, started + 50)
    liveness.beat(search, beat)
    line = status_line(capsys, search)
    assert "it stopped without writing why" in line, line
    assert "see the output of the shell it ran in" in line, line
    code, out, err = run(capsys, "status", "--state", str(search), "--json")
    assert code == 0, err
    assert json.loads(out)["controller"]["log"] is None


def test_a_stale_holder_on_another_host_needs_unlock_force_one_here_does_not(
    search: Path, capsys: pytest.CaptureFixture
) -> None:
    long_ago = time.time() - liveness.stale_after(30.0) - 60.0
    lock = lock_path(search)
    lock.write_text(json.dumps({"host": "login9", "pid": 1, "started": long_ago}))
    liveness.beat(search, liveness.Heartbeat("login9", 1, long_ago, 30.0, 2, long_ago))
    line = status_line(capsys, search)
    assert "STALE heartbeat" in line, line
    assert f"if it is gone, `splinenas unlock --force --state {search}` removes the lock" in line
    lock.unlink()
    here = FileLock(search)
    here.acquire()
    try:
        me = here.holder
        liveness.beat(search, liveness.Heartbeat(me.host, me.pid, me.started, 30.0, 2, long_ago))
        line = status_line(capsys, search)
    finally:
        here.release()
    assert "STALE heartbeat" in line and "its process still runs" in line, line
    assert "unlock" not in line and "takes its lock over by itself" in line, line


def test_run_on_a_search_by_hand_names_both_ways_to_train(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init_state(tmp_path, capsys, experiment_toml("toy", SPACE))
    code, _, err = run(capsys, "run", "--state", str(state), "--once")
    assert code == 1
    assert "[model]: missing table" in err and "built-in trainer" in err, err
    assert "[train] command" in err, err
