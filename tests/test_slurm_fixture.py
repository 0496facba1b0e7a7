"""The Slurm test cluster's fixture cleans up after a test session that is cancelled or killed.

Each test runs a child pytest session whose ``slurm_cluster`` fixture drives
a recorder in place of ``tests/slurm/cluster.sh`` (the real cluster belongs
to this session), so what the fixture would do to the cluster is read back
from the recorder's log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm.cluster_fixture import OWNER_FILE, orphaned

TESTS = Path(__file__).resolve().parent

CONFTEST = """
import subprocess, sys
sys.path.insert(0, {tests!r})
import slurm.cluster_fixture as fixture
from slurm.cluster_fixture import slurm_cluster

STATUS = {status}

def recorder(action):
    with open({log!r}, "a") as out:
        out.write(action + "\\n")
    stdout = "export SLURM_CONF={conf}\\n" if action == "env" else ""
    rc = STATUS if action == "status" else 0
    return subprocess.CompletedProcess([action], rc, stdout, "")

fixture._cluster = recorder
"""

TEST = """
import time
def test_uses_cluster(slurm_cluster):
    open({ready!r}, "w").close()
    time.sleep({sleep})
"""


def _session(tmp_path: Path, *, up: bool, sleep: float) -> tuple[subprocess.Popen, Path, Path]:
    """A child pytest session on the recorder; returns it, its log and its ready file."""
    log, ready, conf = tmp_path / "actions", tmp_path / "ready", tmp_path / "slurm.conf"
    work = tmp_path / "session"
    work.mkdir()
    (work / "conftest.py").write_text(
        CONFTEST.format(tests=str(TESTS), status=0 if up else 3, log=str(log), conf=conf)
    )
    (work / "test_child.py").write_text(TEST.format(ready=str(ready), sleep=sleep))
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(work)],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return child, log, ready


def _actions(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_sigterm_stops_the_cluster_the_session_started(tmp_path: Path) -> None:
    child, log, ready = _session(tmp_path, up=False, sleep=60)
    deadline = time.monotonic() + 60
    while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), child.communicate()[0]
    assert (tmp_path / OWNER_FILE).read_text().strip() == str(child.pid)
    child.send_signal(signal.SIGTERM)
    out = child.communicate(timeout=60)[0]
    assert child.returncode != 0, out
    assert "KeyboardInterrupt" in out
    assert _actions(log) == ["env", "status", "start", "stop"]
    assert not (tmp_path / OWNER_FILE).exists()


def test_a_cluster_left_by_a_dead_session_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / OWNER_FILE).write_text(f"{dead.pid}\n")
    child, log, _ = _session(tmp_path, up=True, sleep=0)
    out = child.communicate(timeout=120)[0]
    assert child.returncode == 0, out
    assert _actions(log) == ["env", "status", "start", "stop"]
    assert not (tmp_path / OWNER_FILE).exists()


@pytest.mark.parametrize("owner", ["live", "none", "garbage"])
def test_a_cluster_someone_else_keeps_stays_up(tmp_path: Path, owner: str) -> None:
    if owner != "none":
        text = str(os.getpid()) if owner == "live" else "not a pid"
        (tmp_path / OWNER_FILE).write_text(text)
    child, log, _ = _session(tmp_path, up=True, sleep=0)
    out = child.communicate(timeout=120)[0]
    assert child.returncode == 0, out
    assert _actions(log) == ["env", "status", "start"]


def test_orphaned(tmp_path: Path) -> None:
    owner = tmp_path / OWNER_FILE
    assert not orphaned(owner)
    owner.write_text(f"{os.getpid()}\n")
    assert not orphaned(owner)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner.write_text(f"{dead.pid}\n")
    assert orphaned(owner)
