"""The O_EXCL side-file lock: refusal, stale takeover, breaking."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nas.record import lock
from nas.record.lock import FileLock, Holder, LockError, break_lock, holder_alive, lock_path

HOST = socket.gethostname()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_lock(state: Path, host: str, pid: int, started: float | None = None) -> Path:
    lock = lock_path(state)
    lock.write_text(json.dumps({"host": host, "pid": pid, "started": started or time.time()}))
    return lock


def test_lock_file_records_the_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "s.h5")
    lock.acquire()
    recorded = json.loads((tmp_path / "s.h5.lock").read_text())
    assert (recorded["host"], recorded["pid"]) == (HOST, os.getpid())
    assert lock.held and lock.still_ours()
    lock.release()
    assert not (tmp_path / "s.h5.lock").exists()


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "s.h5"
    lock = FileLock(state)
    lock.acquire()
    code = textwrap.dedent(
        """
        import sys
        from nas.record.lock import FileLock, LockError
        try:
            FileLock(sys.argv[1]).acquire()
        except LockError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(state)], capture_output=True, text=True, env=env
    )
    lock.release()
    assert done.returncode == 3, done.stderr
    assert f"locked by pid {os.getpid()} on host {HOST}" in done.stdout


def test_stale_lock_of_a_dead_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "s.h5"
    pid = dead_pid()
    write_lock(state, HOST, pid)
    lock = FileLock(state)
    with caplog.at_level(logging.WARNING, logger="nas.record.lock"):
        lock.acquire()
    assert f"stale lock {lock.path} left by pid {pid}" in caplog.text
    assert lock.still_ours()


def test_reused_pid_counts_as_dead() -> None:
    # this process started long after a lock taken at the epoch: the pid was reused
    assert not holder_alive(Holder(HOST, os.getpid(), started=0.0))
    assert holder_alive(Holder(HOST, os.getpid(), started=time.time()))


def test_lock_from_another_host_is_refused_with_unlock_hint(tmp_path: Path) -> None:
    state = tmp_path / "s.h5"
    write_lock(state, "other-node", 1234)
    with pytest.raises(LockError, match=r"pid 1234 on host other-node.*splinenas unlock --force"):
        FileLock(state).acquire()


def test_unreadable_old_lock_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "s.h5"
    lock_path(state).write_text("")
    monkeypatch.setattr(lock, "GRACE_SECONDS", 0.0)
    with pytest.raises(LockError, match=r"unreadable.*splinenas unlock --force --state"):
        FileLock(state).acquire()
    assert break_lock(state, force=True) is None  # the advice given works
    assert not lock_path(state).exists()


def test_release_leaves_a_lock_that_is_not_ours(tmp_path: Path) -> None:
    state = tmp_path / "s.h5"
    lock = FileLock(state)
    lock.acquire()
    write_lock(state, "other-node", 99)  # broken with --force and taken by someone else
    assert not lock.still_ours()
    lock.release()
    assert json.loads(lock_path(state).read_text())["host"] == "other-node"


def test_break_lock_refuses_a_live_holder(tmp_path: Path) -> None:
    state = tmp_path / "s.h5"
    lock = FileLock(state)
    lock.acquire()
    with pytest.raises(LockError, match="still running"):
        break_lock(state, force=True)
    lock.release()
    assert break_lock(state) is None  # nothing to break


def test_break_lock_removes_a_dead_holder_and_needs_force_for_other_hosts(tmp_path: Path) -> None:
    state = tmp_path / "s.h5"
    pid = dead_pid()
    write_lock(state, HOST, pid)
    assert break_lock(state).pid == pid
    assert not lock_path(state).exists()
    write_lock(state, "other-node", 7)
    with pytest.raises(LockError, match="other-node.*--force"):
        break_lock(state)
    assert break_lock(state, force=True).host == "other-node"
    assert not lock_path(state).exists()
