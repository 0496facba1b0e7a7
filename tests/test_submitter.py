"""Evidence of a submission in flight: the same host checks the processes, another host waits."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nas.cluster import submitter
from nas.cluster.proc import CommandError, run_command
from nas.cluster.submitter import LockHeld, Submission, in_flight, submitting

ROOT = Path(__file__).resolve().parents[1]
NAME = "e-p0-r0a1s0"


def wait_until(condition, limit: float = 60.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return not stat[stat.rindex(")") + 2 :].startswith("Z")


def test_a_child_left_by_the_submitter_keeps_it_in_flight_on_this_host(tmp_path: Path) -> None:
    evidence = Submission.begin(NAME, tmp_path, timeout=30)
    with submitting(NAME, tmp_path, timeout=30):
        pid = int(run_command(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"]).stdout)
        with pytest.raises(LockHeld):
            with submitting(NAME, tmp_path, timeout=30):
                pass
    try:
        assert in_flight(evidence) == "its submitter still runs on this host"
    finally:
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: in_flight(evidence) is None)
    assert not Path(evidence.lock).exists(), "a free lock file is removed"


def test_the_lock_is_found_from_another_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "first"))
    (tmp_path / "first").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    evidence = Submission.begin(NAME, tmp_path, timeout=30)
    with submitting(NAME, tmp_path, timeout=30):
        pid = int(run_command(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"]).stdout)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "second"))
    (tmp_path / "second").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    stored = Submission.from_dict(evidence.to_dict())
    try:
        assert stored is not None and in_flight(stored) is not None
    finally:
        os.kill(pid, signal.SIGKILL)


def test_another_host_waits_out_the_time_limit_on_its_own_clock(tmp_path: Path) -> None:
    evidence = dataclasses.replace(
        Submission.begin(NAME, tmp_path, timeout=30), host="other-login-node", seconds=0.5
    )
    assert "cannot check" in (in_flight(evidence) or "")
    time.sleep(0.6)
    assert in_flight(evidence) is None
    skewed = dataclasses.replace(evidence, started=time.time() + 200, seconds=0.5)
    assert in_flight(skewed) is not None, "a clock ahead of ours does not end the wait at once"
    old = dataclasses.replace(evidence, started=time.time() - 3600, seconds=60)
    assert in_flight(old) is None, "evidence far older than its limit needs no wait"


def test_unreadable_evidence_is_none() -> None:
    assert Submission.from_dict(None) is None
    assert Submission.from_dict({"host": "x"}) is None
    assert Submission.from_dict("text") is None


def test_a_submitter_runs_under_its_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPLINENAS_SUBMIT_SECONDS", "0.5")
    with submitting(NAME, tmp_path, timeout=60):
        with pytest.raises(CommandError, match=r"`sleep 30` timed out after 0.5 s"):
            run_command(["sleep", "30"])
        with pytest.raises(CommandError, match="program not found on PATH"):
            run_command(["no-such-submitter-program"])


ORPHAN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from nas.cluster.proc import run_command
    from nas.cluster.submitter import submitting
    with submitting("e-p0-r0a1s0", Path(sys.argv[1]), timeout=60):
        run_command(["sh", "-c", "echo $$ > " + sys.argv[2] + "; exec sleep 300"])
    """
)


def test_a_submitter_orphaned_by_a_killed_controller_dies_at_its_limit(tmp_path: Path) -> None:
    """The controller is SIGKILLed mid-submission; ``timeout`` still ends the submitter."""
    pid_file = tmp_path / "submitter.pid"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPLINENAS_SUBMIT_SECONDS": "2"}
    controller = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(tmp_path), str(pid_file)], env=env
    )
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip())
    evidence = Submission(NAME, submitter.hostname(), controller.pid, time.time(),
                          str(submitter.lock_path(NAME, tmp_path)), 60.0)  # fmt: skip
    controller.kill()
    controller.wait()
    orphan = int(pid_file.read_text())
    assert alive(orphan) and in_flight(evidence) is not None
    assert wait_until(lambda: not alive(orphan)), "the orphan outlived its time limit"
    assert wait_until(lambda: in_flight(evidence) is None)


@pytest.mark.parametrize("planted", ["open folder", "link to a folder"])
def test_a_lock_folder_someone_else_made_first_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    """``/tmp/splinenas-submit-<uid>`` is a predictable name on a shared login node."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(shared))
    monkeypatch.setattr(submitter, "_folders", {})
    usual = shared / f"splinenas-submit-{os.getuid()}"
    if planted == "open folder":
        usual.mkdir()
        usual.chmod(0o777)
    else:
        (tmp_path / "elsewhere").mkdir()
        usual.symlink_to(tmp_path / "elsewhere")
    cwd = tmp_path / "point"
    cwd.mkdir()
    trap = tmp_path / "created-through-a-link"
    (usual / submitter.lock_path(NAME, cwd).name).symlink_to(trap)
    with submitting(NAME, cwd, 30.0):
        held = submitter.lock_path(NAME, cwd)
        assert held.exists() and held.parent.parent == shared and held.parent != usual
        assert (held.parent.stat().st_mode & 0o777) == 0o700
    assert not trap.exists()
