"""The controller's log: one line per change, a summary when it matters, honest Ctrl-C and queueing."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from controller_support import experiment_text, init_state, kill_group, wait_for, write_fake_trainer

from nas.commands.main import main
from nas.control import liveness
from nas.control.cycle import CycleSummary
from nas.control.loop import run_controller
from nas.control.narrate import Narrator, event_line
from nas.pointdir import layout
from nas.record.lock import FileLock
from nas.record.state import Event
from nas.record.store import load_state


def summary(cycle: int, changes: tuple[Event, ...] = (), stop: object = None) -> CycleSummary:
    counts = {"done": 1, "running": 2, "pending": 0, "failed": 0}
    return CycleSummary(cycle, counts, 0, 90.0, None, 0.0, (), stop, changes)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_quiet_cycles_print_a_summary_only_every_so_often() -> None:
    out, clock = io.StringIO(), FakeClock()
    narrate = Narrator(out, every=600.0, clock=clock)
    narrate(summary(1))  # the first cycle always says where the search stands
    for cycle in range(2, 50):
        clock.now += 10.0
        narrate(summary(cycle))
    clock.now += 200.0
    narrate(summary(50))
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["cycle 1", "cycle 50"]


def test_every_change_is_one_line_and_brings_the_summary() -> None:
    out, clock = io.StringIO(), FakeClock()
    narrate = Narrator(out, every=600.0, clock=clock)
    narrate(summary(1))
    failed = Event(
        time.time(), "status", 3, "running -> failed: attempt 1 of 2: exit 1; log tail:\nboom\n"
    )
    retried = Event(time.time(), "status", 3, "failed -> pending: retry 2 of 2")
    clock.now += 5.0
    narrate(summary(2, (failed, retried)))
    lines = out.getvalue().splitlines()
    assert lines[1].endswith(
        "point 3 status: running -> failed: attempt 1 of 2: exit 1; log tail: | boom"
    )
    assert lines[2].endswith("point 3 status: failed -> pending: retry 2 of 2")
    assert lines[3].startswith("cycle 2:") and len(lines) == 4


def test_a_long_log_tail_stays_on_one_line() -> None:
    event = Event(0.0, "status", 1, "failed:\n" + "x" * 80 + "\n" + "y" * 1000)
    line = event_line(event)
    assert "\n" not in line and line.endswith("...") and len(line) < 500


def test_a_search_log_names_each_retry_with_its_reason_and_skips_idle_cycles(
    tmp_path: Path,
) -> None:
    behaviour = {"sleep": 0.3, "modes": {"0": ["exit1"], "2": ["oom"]}}
    fake = write_fake_trainer(tmp_path / "fake", behaviour)
    state = init_state(tmp_path, experiment_text(cluster={"python": str(fake)}))
    out = io.StringIO()
    outcome = run_controller(state, poll=0.05, progress=Narrator(out), cwd=tmp_path)
    log = out.getvalue().splitlines()
    assert any(
        "point 0 status: running -> failed: attempt 1 of 2" in line and "failing on purpose" in line
        for line in log
    )
    assert any("point 0 status: failed -> pending: retry 2 of 2" in line for line in log)
    assert any(
        "point 2 status: running -> infeasible" in line and "out of GPU memory" in line
        for line in log
    )
    assert any(" add: " in line and "point in batch 1" in line for line in log)  # proposals
    cycle_lines = [line for line in log if line.startswith("cycle ")]
    assert len(cycle_lines) < outcome.cycles, "idle cycles print nothing"
    assert cycle_lines[-1].endswith(f"stop: {outcome.reason}")


def test_a_request_to_a_running_controller_says_it_is_queued_not_that_the_state_is_locked(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state = init_state(tmp_path, experiment_text())
    lock = FileLock(state)
    lock.acquire()
    liveness.Pulse(state, 60.0)  # a controller's heartbeat: a bare lock gets nothing queued
    try:
        capsys.readouterr()
        assert main(["rerun", "--state", str(state), "1"]) == 0
        err = capsys.readouterr().err
    finally:
        lock.release()
    assert err.startswith(
        f"queued for the running controller (pid {os.getpid()} on {lock.holder.host})"
    )
    assert "locked" not in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_says_what_keeps_running_and_how_to_stop_it(tmp_path: Path) -> None:
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 60.0})
    state = init_state(tmp_path, experiment_text(cluster={"python": str(fake)}))
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state), "--poll", "0.2"]
    controller = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(p.status.value == "running" for p in load_state(state).points))
        controller.send_signal(signal.SIGINT)
        _, err = controller.communicate(timeout=120)
    finally:
        if controller.poll() is None:
            controller.kill()
        running = [p for p in load_state(state).points if p.job_id]
        for pid_file in (layout.run_dir(state) / "jobs").glob("*/pid"):
            kill_group(pid_file)
    assert controller.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "keep running" in last and f"splinenas cancel --state {state}" in last
    assert any(f"point {p.id} (job {p.job_id})" in last for p in running)


def test_run_json_counts_the_changes_of_its_last_cycle(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 0.0})
    state = init_state(tmp_path, experiment_text(cluster={"python": str(fake)}))
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--state", str(state), "--once", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["changes"] >= 3
    assert "status: pending -> submitting" in captured.err
