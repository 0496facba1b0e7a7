"""The batch job runner shared by the fake PBS and Flux commands, and the state folder and
job numbering every fake scheduler (LSF too) keeps.

A fake ``qsub`` or ``flux batch`` starts this file detached (its own session)
with the job's folder, the script and its limits. It runs the script in a
process group of its own, as a scheduler's job shell does, so a cancel can
signal every process of the job while this runner survives to record how the
job ended: ``exit.json`` with the wait status (negative: the signal),
whether the time limit killed it, and whether it was cancelled before it
started. Standard library only.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Seconds between TERM and KILL when a limit or a cancel stops a job.
KILL_GRACE = 2.0


def state_dir(variable: str, scheduler: str) -> Path:
    """The fake scheduler's state folder, named by environment ``variable``; exits if unset."""
    root = os.environ.get(variable)
    if not root:
        sys.exit(f"fake {scheduler}: set {variable} to a folder for its state")
    path = Path(root)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


def next_number(root: Path) -> int:
    """1, 2, 3, ... per state folder, safe across concurrent submitters."""
    with open(root / "counter.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = root / "counter"
        number = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(number))
        return number


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return False


def terminate_group(pgid: int) -> None:
    """TERM the process group, then KILL whatever is left after the grace time."""
    for signum, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and alive(pgid):
            time.sleep(0.05)


def write_json(path: Path, document: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(path)


def run(folder: Path, script: str, limit: float, warn_signal: int, warn_before: float) -> None:
    """Run ``script`` until it ends or ``limit`` seconds pass; record the outcome."""
    if (folder / "cancelled").exists():
        write_json(folder / "exit.json", {"waitstatus": None, "timeout": False, "started": False})
        return
    child = subprocess.Popen(["bash", script], start_new_session=True)
    (folder / "pid").write_text(str(child.pid))
    if (folder / "cancelled").exists():  # cancelled while it was starting
        terminate_group(child.pid)
    started = time.monotonic()
    warned, timed_out = warn_before <= 0, False
    while child.poll() is None:
        elapsed = time.monotonic() - started
        if not warned and elapsed >= limit - warn_before:
            warned = True
            os.killpg(child.pid, warn_signal)  # to the script and every step, as Flux does
        if elapsed >= limit:
            timed_out = True
            terminate_group(child.pid)
            break
        time.sleep(0.05)
    status = child.wait()
    write_json(folder / "exit.json", {"waitstatus": status, "timeout": timed_out, "started": True})


if __name__ == "__main__":
    folder_arg, script_arg, limit_arg, signal_arg, before_arg = sys.argv[1:6]
    run(Path(folder_arg), script_arg, float(limit_arg), int(signal_arg), float(before_arg))
