"""Requests are queued only for a running controller; any other lock holder is waited for.

`rerun`, `cancel` and `expand` queued their request whenever the lock was
taken, also by `add`, `record` or `run --once`, which never read the inbox:
"queued for the running controller", exit 0, and the request waited for some
unrelated later run. `run --max-points` could not reach a running controller
at all. The holders here are real processes: a stand-in that holds the lock
as a short command or a `run --once` does, and a real `splinenas run`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_support import kill_group, wait_for
from experiment_support import FLOAT_BOX, command_experiment, experiment_toml, init_state, run

from nas.control import inbox, liveness
from nas.pointdir import layout
from nas.record.state import PointStatus
from nas.record.store import load_state

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"x": FLOAT_BOX, "y": FLOAT_BOX}

#: Holds the state's lock as ``sys.argv[2]`` does: ``command`` (record, add: no heartbeat),
#: ``once`` (``run --once``: a heartbeat for one cycle) or ``controller`` (a heartbeat until a
#: stop); for ``sys.argv[3]`` seconds, or until its stdin ends when that is negative.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from nas.control.liveness import Pulse
    from nas.record.lock import FileLock
    state, role, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lock = FileLock(state)
    lock.acquire()
    pulse = None if role == "command" else Pulse(state, 60.0, 1 if role == "once" else None)
    print("locked", flush=True)
    time.sleep(seconds) if seconds >= 0 else sys.stdin.read()
    if pulse is not None:
        pulse.stopped("1 cycle(s) done")
    lock.release()
    """
)


@pytest.fixture
def toy(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A search by hand (no controller can run it): points 0-4 pending."""
    return init_state(tmp_path, capsys, experiment_toml("toy", SPACE))


def hold(state: Path, role: str, seconds: float = -1.0) -> subprocess.Popen:
    """A live process that holds ``state``'s lock as ``role`` (see :data:`HOLDER`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", HOLDER, str(state.resolve()), role, str(seconds)]
    holder = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def waiting(state: Path) -> list[Path]:
    return sorted(layout.inbox_dir(layout.run_dir(state)).glob("*.json"))


@pytest.mark.parametrize("role", ["command", "once"])
def test_a_request_waits_for_a_holder_that_is_no_controller_and_is_applied_here(
    toy: Path, capsys: pytest.CaptureFixture, role: str
) -> None:
    holder = hold(toy, role, seconds=1.5)
    try:
        code, out, err = run(capsys, "cancel", "--state", str(toy), "0", "--json")
    finally:
        holder.communicate("")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["applied"] and doc["queued"] is None and "queued" not in err
    assert load_state(toy).point(0).status is PointStatus.CANCELLED
    assert waiting(toy) == []


def test_a_holder_that_keeps_the_lock_is_named_and_nothing_is_queued(
    toy: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nas.commands.operate.LOCK_WAIT_SECONDS", 0.5, raising=False)
    holder = hold(toy, "command")
    try:
        code, _, err = run(capsys, "rerun", "--state", str(toy), "0")
    finally:
        holder.communicate("")
    assert code == 1
    assert f"locked by pid {holder.pid}" in err and "waited 0.5 s" in err, err
    assert "nothing was queued" in err
    assert waiting(toy) == []


def test_a_controller_that_stops_as_the_request_is_posted_leaves_it_to_the_command(
    toy: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = hold(toy, "controller")
    post = inbox.post

    def post_then_stop(run_dir: Path, request: dict) -> Path:
        path = post(run_dir, request)
        holder.communicate("")  # its last cycle is over: it stops and releases the lock
        return path

    monkeypatch.setattr(inbox, "post", post_then_stop)
    code, out, err = run(capsys, "cancel", "--state", str(toy), "1", "--json")
    assert code == 0, err
    assert json.loads(out)["applied"] and "queued" not in err
    assert load_state(toy).point(1).status is PointStatus.CANCELLED
    assert waiting(toy) == []


def test_status_names_the_requests_left_in_the_inbox(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    inbox.post(layout.run_dir(toy), {"action": "cancel", "ids": [2]})  # as a bug once left one
    code, out, err = run(capsys, "status", "--state", str(toy), "--json")
    assert code == 0, err
    assert json.loads(out)["controller"]["requests_waiting"] == 1
    line = run(capsys, "status", "--state", str(toy))[1].strip().splitlines()[-1]
    assert "1 request waits in" in line and "`rerun`, `cancel` or `expand` applies it" in line
    assert run(capsys, "rerun", "--state", str(toy), "3")[0] == 0  # pending already: no change,
    assert load_state(toy).point(2).status is PointStatus.CANCELLED  # but the inbox was applied
    line = run(capsys, "status", "--state", str(toy))[1].strip().splitlines()[-1]
    assert "request" not in line


# ---------------------------------------------------------------------------- a real controller


@pytest.fixture
def controller(tmp_path: Path, capsys: pytest.CaptureFixture) -> Iterator[tuple[Path, int]]:
    """A real ``splinenas run`` (one 60 s job at a time) on a fresh state: its path and pid."""
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    cluster = {"backend": "local", "max_concurrent_jobs": 1, "gpus_per_node": 0}
    text = command_experiment("ctl", sleep, SPACE, cluster=cluster, max_points=6)
    state = init_state(tmp_path, capsys, text)
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state), "--poll", "0.2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: liveness.controller_holder(state) is not None)
        yield state, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        for pid_file in (layout.run_dir(state) / "jobs").glob("*/pid"):
            kill_group(pid_file)


def test_a_running_controller_gets_a_cancel_queued_and_applies_it(
    controller: tuple[Path, int], capsys: pytest.CaptureFixture
) -> None:
    state, pid = controller
    code, out, err = run(capsys, "cancel", "--state", str(state), "4", "--json")
    assert code == 0, err
    assert not json.loads(out)["applied"]
    assert err.startswith(f"queued for the running controller (pid {pid} on ")
    wait_for(lambda: load_state(state).point(4).status is PointStatus.CANCELLED)
    wait_for(lambda: not waiting(state))


def test_run_max_points_reaches_a_running_controller(
    controller: tuple[Path, int], capsys: pytest.CaptureFixture
) -> None:
    state, pid = controller
    code, out, err = run(capsys, "run", "--state", str(state), "--max-points", "9", "--json")
    assert code == 0, err
    assert Path(json.loads(out)["queued"]).parent == layout.inbox_dir(layout.run_dir(state))
    assert err.startswith(f"queued for the running controller (pid {pid} on ")
    wait_for(lambda: load_state(state).meta.get("max_points") == 9)
    budget = [e.message for e in load_state(state).events if e.kind == "budget"]
    assert len(budget) == 1 and budget[0].startswith("max_points 6 -> 9 by ")
    assert "(run --max-points)" in budget[0]
    assert liveness.controller_holder(state) is not None  # still the one controller
    # propose cannot run beside it: said at once, with the way that works
    code, _, err = run(capsys, "propose", "--state", str(state), "--max-points", "12")
    assert code == 1 and f"a running controller (pid {pid} on " in err, err
    assert f"`splinenas run --state {state} --max-points 12` (queued for it)" in err


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        ({"action": "budget"}, "missing key 'max_points'"),
        ({"action": "budget", "max_points": 0}, "positive integer"),
        ({"action": "budget", "max_points": 5, "ids": [1]}, "unknown keys"),
    ],
)
def test_a_malformed_budget_request_is_named(request_: dict, match: str) -> None:
    with pytest.raises(inbox.RequestError, match=match):
        inbox.validate(request_)
