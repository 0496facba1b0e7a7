"""The controller on the local backend with a stand-in trainer (see controller_support).

The stand-in leaves the same files as the real trainer, in a fraction of a
second, so these tests cover retries, bad result files, out-of-memory,
by-hand results, re-attachment and the lock quickly; the real trainer runs in
test_controller_e2e.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from controller_support import (
    experiment_text,
    init_state,
    job_names,
    objective,
    write_fake_trainer,
)

from nas.cluster import LocalScheduler
from nas.commands.main import main
from nas.control import policy
from nas.control.loop import run_controller
from nas.control.prepare import JobSettings
from nas.pointdir import layout
from nas.record.hdf5 import StateStore, load_state
from nas.record.lock import FileLock
from nas.record.state import PointStatus

S = PointStatus


def setup_run(tmp_path: Path, behaviour: dict | None = None, **tables: dict) -> Path:
    """A state whose jobs run the stand-in trainer with ``behaviour``."""
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 0.0, **(behaviour or {})})
    cluster = {"python": str(fake), **tables.pop("cluster", {})}
    return init_state(tmp_path, experiment_text(cluster=cluster, **tables))


def run_until_done(state: Path, tmp_path: Path, max_cycles: int = 400) -> object:
    return run_controller(
        state, poll=0.05, max_cycles=max_cycles, progress=lambda s: None, cwd=tmp_path
    )


def events(state_path: Path, kind: str) -> list:
    return [e for e in load_state(state_path).events if e.kind == kind]


def test_search_runs_to_its_budget_and_records_every_result(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path)
    outcome = run_until_done(state_path, tmp_path)
    state = load_state(state_path)
    assert outcome.ok and "max_points" in outcome.reason
    assert [p.status for p in state.points] == [S.DONE] * 7
    assert all(p.value == pytest.approx(objective(p.params)) for p in state.points)
    assert {p.origin for p in state.points} == {"initial", "incremental"}
    assert state.fits, "spline proposals record their fit"
    run = layout.run_dir(state_path)
    assert len(job_names(run)) == 7
    script = (layout.point_dir(run, 0) / "job.sh").read_text()
    assert "ctl-p0-r0a1s0" in script and str(layout.point_dir(run, 0)) in script


def test_failing_job_is_retried_then_left_failed_with_reason_and_log(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path, {"modes": {"1": ["exit1", "exit1"]}})
    run_until_done(state_path, tmp_path)
    point = load_state(state_path).point(1)
    assert point.status is S.FAILED and point.attempts == 2
    assert "gave up after 2 attempts" in point.reason
    assert "exit code 1" in point.reason and "failing on purpose" in point.reason
    names = [n for n in job_names(layout.run_dir(state_path)) if "-p1-" in n]
    assert names == ["ctl-p1-r0a1s0", "ctl-p1-r0a2s0"]
    retries = [
        e for e in events(state_path, "status") if e.point_id == 1 and "retry 2" in e.message
    ]
    assert len(retries) == 1


def test_out_of_memory_marks_the_point_infeasible_without_retry(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path, {"modes": {"2": ["oom"]}})
    run_until_done(state_path, tmp_path)
    point = load_state(state_path).point(2)
    assert point.status is S.INFEASIBLE and point.attempts == 1
    assert "out of GPU memory" in point.reason


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("corrupt", "not valid JSON"),
        ("wrong-point", "point_id 999 but expected 0"),
        ("nan", "NaN is not a JSON number (line 1 column"),
    ],
)
def test_bad_result_file_is_set_aside_with_its_reason(tmp_path: Path, mode: str, why: str) -> None:
    state_path = setup_run(tmp_path, {"modes": {"0": [mode]}})
    run_until_done(state_path, tmp_path)
    folder = layout.point_dir(layout.run_dir(state_path), 0)
    assert why in (folder / "result.rejected-1.reason.txt").read_text()
    assert (folder / "result.rejected-1.json").exists()
    point = load_state(state_path).point(0)
    assert point.status is S.DONE and point.attempts == 2  # the retry measured it
    assert any(why in e.message for e in events(state_path, "reject"))


def test_incomplete_job_continues_with_the_next_segment(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path, {"modes": {"3": ["progress", "progress"]}})
    run_until_done(state_path, tmp_path)
    point = load_state(state_path).point(3)
    assert point.status is S.DONE and (point.attempts, point.segment) == (1, 2)
    folder = layout.point_dir(layout.run_dir(state_path), 3)
    archived = sorted(p.name for p in folder.glob("progress.*.json"))
    assert archived == ["progress.ctl-p3-r0a1s0-1.json", "progress.ctl-p3-r0a1s1-1.json"]


def test_segment_without_progress_counts_as_a_failure(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path, {"modes": {"3": ["progress"]}})
    # The stand-in reports epochs n + 1 on its n-th run; a stale position makes no progress.
    with StateStore.open(state_path) as store:
        store.state.update_point(3, extra={"position": [5, 0]})
        store.commit()
    run_until_done(state_path, tmp_path)
    point = load_state(state_path).point(3)
    assert point.attempts == 2 and point.status is S.DONE
    assert any("made no progress" in e.message for e in events(state_path, "status"))


def test_result_written_by_hand_for_a_failed_point_is_ingested(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path, {"modes": {"1": ["exit1", "exit1"]}})
    run_until_done(state_path, tmp_path)
    assert load_state(state_path).point(1).status is S.FAILED
    folder = layout.point_dir(layout.run_dir(state_path), 1)
    # A person resubmits the job script by hand; the stand-in now succeeds.
    subprocess.run(["bash", str(folder / "job.sh")], check=True)
    run_until_done(state_path, tmp_path, max_cycles=1)
    point = load_state(state_path).point(1)
    assert point.status is S.DONE and point.value == pytest.approx(objective(point.params))
    ingest = [e for e in events(state_path, "ingest") if e.point_id == 1]
    assert len(ingest) == 1 and "for a failed point" in ingest[0].message


@pytest.mark.parametrize("job_started", [False, True])
def test_point_left_submitting_by_a_crash_gets_exactly_one_job(
    tmp_path: Path, job_started: bool
) -> None:
    """Killed after committing the intent: before the submission, or before recording its id."""
    state_path = setup_run(tmp_path, {"sleep": 5.0}, cluster={"max_concurrent_jobs": 1})
    run = layout.run_dir(state_path)
    with StateStore.open(state_path) as store:
        state = store.state
        state.update_point(0, attempts=1, job_name="ctl-p0-r0a1s0")
        state.set_status(0, S.SUBMITTING, "as ctl-p0-r0a1s0")
        experiment = policy.experiment_of(state, "test")
        JobSettings.from_experiment(experiment, tmp_path).prepare(run, state.point(0))
        store.commit()
    folder = layout.point_dir(run, 0)
    started = ""
    if job_started:
        scheduler = LocalScheduler(layout.jobs_dir(run))
        started = scheduler.submit(folder / "job.sh", job_name="ctl-p0-r0a1s0", cwd=folder)
    run_until_done(state_path, tmp_path, max_cycles=1)
    assert job_names(run) == ["ctl-p0-r0a1s0"]
    point = load_state(state_path).point(0)
    assert point.status in (S.SUBMITTED, S.RUNNING) and point.attempts == 1
    assert point.job_id == started or not job_started
    LocalScheduler(layout.jobs_dir(run)).cancel(point.job_id)


def test_dry_run_renders_scripts_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_path = setup_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    generation = load_state(state_path).generation
    assert main(["run", "--state", str(state_path), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in plan["submit"]] == [0, 1, 2]
    assert Path(plan["submit"][0]["script"]).is_file()
    state = load_state(state_path)
    assert state.generation == generation
    assert {p.status for p in state.points} == {S.PENDING}
    assert not (layout.run_dir(state_path) / "jobs").exists()


def test_second_controller_is_refused_by_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    state_path = setup_run(tmp_path)
    lock = FileLock(state_path)
    lock.acquire()
    try:
        assert main(["run", "--state", str(state_path), "--once"]) == 1
    finally:
        lock.release()
    assert "locked by" in capsys.readouterr().err


def test_relative_env_file_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state_path = setup_run(tmp_path, cluster={"env_file": "envs/missing.sh"})
    assert main(["run", "--state", str(state_path), "--once"]) == 1
    assert "env_file: 'envs/missing.sh' does not exist" in capsys.readouterr().err


def test_inbox_request_is_applied_by_the_running_controller(tmp_path: Path) -> None:
    from nas.control import inbox

    state_path = setup_run(tmp_path, cluster={"max_concurrent_jobs": 1})
    inbox.post(layout.run_dir(state_path), {"action": "cancel", "ids": [4]})
    run_until_done(state_path, tmp_path, max_cycles=1)
    assert load_state(state_path).point(4).status is S.CANCELLED
    assert not list(layout.inbox_dir(layout.run_dir(state_path)).glob("*.json"))


# ---------------------------------------------------------------------------- kill -9


def controller_process(state_path: Path, cwd: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state_path), "--poll", "0.05"]
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigkill_at_random_moments_never_loses_or_duplicates(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    state_path = setup_run(
        tmp_path,
        {"sleep": 0.4, "journal": str(journal)},
        experiment={"max_points": 30, "batch_size": 2},
        cluster={"max_concurrent_jobs": 3},
    )
    rng = random.Random(7)
    kills = 0
    while kills < 24:
        process = controller_process(state_path, tmp_path)
        time.sleep(rng.uniform(0.3, 2.5))
        if process.poll() is not None:
            break  # the search finished between two kills
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 20
    assert load_state(state_path).with_status(S.DONE), "the kills interrupted real progress"
    final = controller_process(state_path, tmp_path)
    assert final.wait(timeout=240) == 0

    state = load_state(state_path)
    assert {p.status for p in state.points} == {S.DONE}
    assert all(p.value == pytest.approx(objective(p.params)) for p in state.points)
    recorded = Counter(e.point_id for e in state.events if e.kind == "record")
    assert recorded == Counter(p.id for p in state.points), "every measurement exactly once"
    names = job_names(layout.run_dir(state_path))
    assert len(names) == len(set(names)), "no job name submitted twice"
    assert_never_concurrent(journal.read_text().splitlines())


def assert_never_concurrent(lines: list[str]) -> None:
    """No point has two stand-in trainings that overlap in time."""
    spans: dict[int, dict[int, list[float]]] = {}
    for line in lines:
        what, point, pid, when = line.split()
        spans.setdefault(int(point), {}).setdefault(int(pid), []).append(float(when))
    for point, runs in spans.items():
        intervals = sorted(times for times in runs.values())
        for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
            assert end <= start, f"point {point} trained twice at once"


def test_sigterm_ends_the_controller_after_its_cycle_with_exit_0(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path, {"sleep": 30.0}, cluster={"max_concurrent_jobs": 1})
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state_path), "--poll", "30"]
    process = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    while not line.startswith("cycle 1:"):
        assert line, "the controller ended before its first cycle"
        line = process.stderr.readline()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert "stopped by a signal" in process.stderr.read()
    point = load_state(state_path).point(0)
    assert point.status in (S.SUBMITTED, S.RUNNING)  # its job was committed and keeps running
    assert not (state_path.parent / "ctl.h5.lock").exists()
    LocalScheduler(layout.jobs_dir(layout.run_dir(state_path))).cancel(point.job_id)


def test_a_design_point_estimated_not_to_fit_is_never_submitted(tmp_path: Path) -> None:
    from nas.models.cost import estimate

    fixed = {"block": "basic", "stem": "conv7", "maxpool": False, "c1": 8, "g3": 8, "g4": 8}
    fixed.update(d1=1, d2=1, d3=1, d4=1)
    sizes = [
        estimate("resnet", {**fixed, "g1": g, "g2": g}, 10, resolution=16, batch_per_gpu=2048)
        for g in (4, 16)
    ]
    limit = (sizes[0].memory_bytes + sizes[1].memory_bytes) / 2 / 1e9
    state_path = setup_run(
        tmp_path,
        experiment={"max_points": 5},
        train={"batch_per_gpu": 2048},
        cluster={"max_gpu_memory_gb": limit},
    )
    run_until_done(state_path, tmp_path)
    state = load_state(state_path)
    too_big = state.point(0)
    assert too_big.params == {"g1": 16, "g2": 16}
    assert too_big.status is S.INFEASIBLE and too_big.attempts == 0 and not too_big.job_name
    assert "max_gpu_memory_gb" in too_big.reason
    assert not any("-p0-" in n for n in job_names(layout.run_dir(state_path)))
    assert state.point(1).status is S.DONE


def test_run_detach_returns_at_once_and_the_search_finishes_in_the_background(
    tmp_path: Path,
) -> None:
    """Through a real CLI process, as a user runs it: the detached controller outlives it."""
    from nas.cluster.keepalive import LOG, PID, controller_dir, running_pid

    state_path = setup_run(tmp_path, {"sleep": 0.5}, experiment={"max_points": 5})
    argv = [sys.executable, "-m", "nas", "run", "--state", str(state_path), "--poll", "0.1"]

    def splinenas(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*argv, *extra], cwd=tmp_path, capture_output=True, text=True)

    started = splinenas("--detach", "--json")
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    folder = controller_dir(state_path)
    assert running_pid(folder / PID) == pid
    second = splinenas("--detach")
    assert second.returncode == 1, "a second detached controller is refused while one runs"
    assert re.search(r"which still runs|is in use by", second.stderr)
    deadline = time.monotonic() + 120
    while running_pid(folder / PID) is not None:
        assert time.monotonic() < deadline, "the detached controller did not finish"
        time.sleep(0.2)
    assert [p.status for p in load_state(state_path).points] == [S.DONE] * 5
    log = (folder / LOG).read_text()
    assert "cycle 1:" in log and "stopped: max_points reached" in log
    assert splinenas("--detach", "--once").returncode == 2
