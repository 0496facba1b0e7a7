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
    leave_submitting,
    objective,
    write_fake_trainer,
)

from nas.cluster import JobState, LocalScheduler
from nas.cluster.processes import ProcessTable
from nas.commands.main import main
from nas.control import policy
from nas.control.liveness import heartbeat_path
from nas.control.loop import run_controller
from nas.pointdir import layout
from nas.record.lock import FileLock
from nas.record.state import PointStatus
from nas.record.store import StateStore, load_state

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
    assert {p.origin for p in state.points} == {"initial", "incremental", "fill"}  # batches of 2
    assert state.fits, "spline proposals record their fit"
    assert policy.current_fit(state) is state.fits[-1], "the last fit is on every measured point"
    assert set(state.fits[-1].support_ids) == {p.id for p in state.points}
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


@pytest.mark.parametrize(("mode", "attempts"), [("orphan", 2), ("lose-wrapper", 1)])
def test_a_job_ends_when_its_processes_do_so_a_retry_never_trains_alongside(
    tmp_path: Path, mode: str, attempts: int
) -> None:
    """A trainer's child left running, or a trainer whose job wrapper was killed."""
    state_path = setup_run(
        tmp_path, {"modes": {"0": [mode]}}, experiment={"max_points": 2, "batch_size": 2}
    )
    run_until_done(state_path, tmp_path)
    point = load_state(state_path).point(0)
    folder = layout.point_dir(layout.run_dir(state_path), 0)
    assert not (folder / "overlaps.txt").exists(), (folder / "overlaps.txt").read_text()
    assert (point.status, point.attempts) == (S.DONE, attempts)


def test_a_result_of_another_point_fails_at_once_as_a_broken_contract(tmp_path: Path) -> None:
    """The same command writes the same wrong point_id next time: no retry pays for it."""
    state_path = setup_run(tmp_path, {"modes": {"0": ["wrong-point"]}})
    run_until_done(state_path, tmp_path)
    folder = layout.point_dir(layout.run_dir(state_path), 0)
    assert "point_id 999 but expected 0" in (folder / "result.rejected-1.reason.txt").read_text()
    point = load_state(state_path).point(0)
    assert point.status is S.FAILED and point.attempts == 1
    assert "point_id 999 but expected 0" in point.reason


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
        ("nan", "metrics.top1"),  # a divergence: retried with the next seed
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
    result = json.loads((folder / "result.json").read_text())  # a NaN loss, as json.dump writes
    result["metrics"]["val_loss"] = float("nan")
    (folder / "result.json").write_text(json.dumps(result))
    run_until_done(state_path, tmp_path, max_cycles=1)
    point = load_state(state_path).point(1)
    assert point.status is S.DONE and point.value == pytest.approx(objective(point.params))
    ingest = [e for e in events(state_path, "ingest-by-hand") if e.point_id == 1]
    assert len(ingest) == 1 and "for a failed point" in ingest[0].message
    assert "; dropped from result.json: metrics.val_loss (nan)" in ingest[0].message


def test_a_result_written_again_for_a_measured_point_is_said_once_and_not_recorded(
    tmp_path: Path,
) -> None:
    state_path = setup_run(tmp_path, experiment={"max_points": 2, "batch_size": 2})
    run_until_done(state_path, tmp_path)
    kept = load_state(state_path).point(1).value
    folder = layout.point_dir(layout.run_dir(state_path), 1)
    run_until_done(state_path, tmp_path, max_cycles=1)
    assert events(state_path, "late-result") == [], "the ingested file itself is no news"
    # A person runs the measured point's script again: a new file with another number.
    result = json.loads((folder / "result.json").read_text())
    result["metrics"]["top1"] = 12.5
    (folder / "result.json").write_text(json.dumps(result))
    run_until_done(state_path, tmp_path, max_cycles=2)
    late = events(state_path, "late-result")
    assert [e.point_id for e in late] == [1], "said once, however many cycles see it"
    assert "top1 12.5" in late[0].message and f"keeps its measurement {kept:.6g}" in late[0].message
    assert load_state(state_path).point(1).value == kept
    (folder / "result.json").write_text("{not json")  # and once more, broken
    run_until_done(state_path, tmp_path, max_cycles=1)
    late = events(state_path, "late-result")
    assert len(late) == 2 and "not a valid result" in late[1].message
    assert (folder / "result.json").read_text() == "{not json", "nothing in the folder is moved"


@pytest.mark.parametrize("job_started", [False, True])
def test_point_left_submitting_by_a_crash_gets_exactly_one_job(
    tmp_path: Path, job_started: bool
) -> None:
    """Killed after committing the intent: before the submission, or before recording its id."""
    state_path = setup_run(tmp_path, {"sleep": 5.0}, cluster={"max_concurrent_jobs": 1})
    run = layout.run_dir(state_path)
    folder = leave_submitting(state_path, tmp_path)
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


def _tree_hash(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its bytes."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


def test_dry_run_writes_nothing_and_shows_the_scripts(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_path = setup_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _tree_hash(tmp_path)
    assert main(["run", "--state", str(state_path), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert _tree_hash(tmp_path) == before
    assert [entry["id"] for entry in plan["submit"]] == [0, 1, 2]
    assert plan["submit"][0]["script"] is None
    assert "ctl-p0-r0a1s0" in plan["submit"][0]["text"]
    assert main(["run", "--state", str(state_path), "--dry-run"]) == 0
    assert "#!/bin/bash" in capsys.readouterr().out
    assert _tree_hash(tmp_path) == before
    out = tmp_path / "scripts"
    assert main(["run", "--state", str(state_path), "--dry-run", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"ctl-p{i}-r0a1s0.sh" for i in range(3)]
    after = {k: v for k, v in _tree_hash(tmp_path).items() if not k.startswith("scripts")}
    assert after == before
    assert {p.status for p in load_state(state_path).points} == {S.PENDING}


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
        {"sleep": 0.8, "journal": str(journal)},  # trainings long enough to outlast 24 kills
        experiment={"max_points": 30, "batch_size": 2},
        cluster={"max_concurrent_jobs": 3},
    )
    rng = random.Random(7)
    kills = 0
    while kills < 24:
        beat = heartbeat_path(state_path)
        before = beat.stat().st_mtime_ns if beat.exists() else None
        process = controller_process(state_path, tmp_path)
        if kills % 2:
            # Every other life completes a cycle before its kill, however slow the machine:
            # the search must make progress between kills, not only restart.
            wait_for_cycle(process, beat, before)
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


def wait_for_cycle(process: subprocess.Popen, beat: Path, before: int | None) -> None:
    """Wait until ``process`` has written a heartbeat newer than ``before`` (or has ended)."""
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if beat.exists() and beat.stat().st_mtime_ns != before:
            return
        time.sleep(0.05)


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


def _memory_limited_run(tmp_path: Path) -> Path:
    """A run whose point 0 (g1 = g2 = 16) is estimated not to fit a GPU, point 1 does."""
    from nas.models.footprint import estimate

    fixed = {"block": "basic", "stem": "conv7", "maxpool": False, "c1": 8, "g3": 8, "g4": 8}
    fixed.update(d1=1, d2=1, d3=1, d4=1)
    sizes = [
        estimate("resnet", {**fixed, "g1": g, "g2": g}, 10, resolution=16, batch_per_gpu=2048)
        for g in (4, 16)
    ]
    limit = (sizes[0].memory_bytes + sizes[1].memory_bytes) / 2 / 2**30
    state_path = setup_run(
        tmp_path,
        experiment={"max_points": 5},
        train={"batch_per_gpu": 2048},
        cluster={"max_gpu_memory_gib": limit, "memory_margin": 1.0},
    )
    return state_path


def test_a_design_point_estimated_not_to_fit_is_never_submitted(tmp_path: Path) -> None:
    state_path = _memory_limited_run(tmp_path)
    run_until_done(state_path, tmp_path)
    state = load_state(state_path)
    too_big = state.point(0)
    assert too_big.params == {"g1": 16, "g2": 16}
    assert too_big.status is S.INFEASIBLE and too_big.attempts == 0 and not too_big.job_name
    assert "max_gpu_memory_gib" in too_big.reason
    assert not any("-p0-" in n for n in job_names(layout.run_dir(state_path)))
    assert state.point(1).status is S.DONE


def test_dry_run_shows_what_a_cycle_marks_infeasible_and_does_not_list_it_to_submit(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_path = _memory_limited_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--state", str(state_path), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    shown = {entry["id"] for entry in plan["infeasible"]}
    assert 0 in shown and all("max_gpu_memory_gib" in e["reason"] for e in plan["infeasible"])
    assert not shown & {entry["id"] for entry in plan["submit"]}
    assert load_state(state_path).point(0).status is S.PENDING  # shown, not applied
    run_until_done(state_path, tmp_path, max_cycles=1)
    marked = {p.id for p in load_state(state_path).points if p.status is S.INFEASIBLE}
    assert marked == shown  # the dry run and the cycle make one selection


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


def test_a_failing_environment_file_fails_the_point_once_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env.sh"
    env_file.write_text("module_load_failed() { return 7; }\nmodule_load_failed\n")
    state_path = setup_run(tmp_path, cluster={"env_file": str(env_file)})
    outcome = run_until_done(state_path, tmp_path, max_cycles=60)
    state = load_state(state_path)
    assert not outcome.ok  # nothing left to do but wait for a person
    assert all(p.status is S.FAILED and p.attempts == 1 for p in state.points[:3])
    point = state.point(0)
    assert "sourcing the environment file" in point.reason and "exit status 7" in point.reason
    assert "splinenas rerun" in point.reason
    assert not (layout.point_dir(layout.run_dir(state_path), 0) / "result.json").exists()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["status", "--state", str(state_path)]) == 0
    assert "exit status 7" in capsys.readouterr().out


class _MemoryLimitedScheduler(LocalScheduler):
    """The local backend, reporting a job that exits 1 as killed for its memory (as Slurm's
    OUT_OF_MEMORY or LSF's TERM_MEMLIMIT would): the scheduler's word, not the trainer's."""

    def _state(self, folder: Path, table: ProcessTable) -> JobState:
        state = super()._state(folder, table)
        return JobState.OUT_OF_MEMORY if state is JobState.FAILED else state

    def reason(self, job_id: str) -> str:
        return "JobState=OUT_OF_MEMORY Reason=OutOfMemory"


def test_a_job_the_scheduler_kills_for_memory_is_infeasible_without_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nas.control.policy

    def scheduler_of(experiment: object, state_path: Path) -> _MemoryLimitedScheduler:
        return _MemoryLimitedScheduler(layout.jobs_dir(layout.run_dir(state_path)))

    monkeypatch.setattr(nas.control.policy, "scheduler_of", scheduler_of)
    state_path = setup_run(tmp_path, {"modes": {"1": ["exit1"]}})
    run_until_done(state_path, tmp_path)
    point = load_state(state_path).point(1)
    assert point.status is S.INFEASIBLE and point.attempts == 1
    assert "exceeding its memory limit" in point.reason and "OUT_OF_MEMORY" in point.reason
    assert [n for n in job_names(layout.run_dir(state_path)) if "-p1-" in n] == ["ctl-p1-r0a1s0"]


@pytest.mark.parametrize("keep", [False, True])
def test_a_measured_point_deletes_its_checkpoint_unless_told_to_keep_it(
    tmp_path: Path, keep: bool
) -> None:
    state_path = setup_run(
        tmp_path, {"modes": {"0": ["progress"]}}, train={"keep_checkpoint": keep}
    )
    run_until_done(state_path, tmp_path)
    assert load_state(state_path).point(0).status is S.DONE
    checkpoint = layout.point_dir(layout.run_dir(state_path), 0) / "checkpoint.pt"
    assert checkpoint.exists() is keep


def seeds_of(state_path: Path, point_id: int) -> list[int]:
    runs = layout.point_dir(layout.run_dir(state_path), point_id) / "fake-runs.txt"
    return [int(line.split()[-1]) for line in runs.read_text().splitlines()]


def test_a_diverged_point_is_retried_once_with_a_new_seed(tmp_path: Path) -> None:
    state_path = setup_run(tmp_path, {"modes": {"1": ["diverged"], "2": ["diverged", "diverged"]}})
    run_until_done(state_path, tmp_path)
    state = load_state(state_path)
    healthy, twice = state.point(1), state.point(2)
    assert healthy.status is S.DONE and seeds_of(state_path, 1) == [0, 1]
    assert state.curves[1][0]["top1"] == pytest.approx(healthy.value)  # the retry's curve
    folder = layout.point_dir(layout.run_dir(state_path), 1)
    assert [p.name for p in folder.glob("curve.diverged-*")] == ["curve.diverged-seed0-1.jsonl"]
    assert twice.status is S.FAILED and seeds_of(state_path, 2) == [0, 1]
    assert "diverged again" in twice.reason and state.curves[2][0]["top1"] == 10.0
    assert twice.extra["guard_saved"] == {"device_hours": 4.0, "gpu_hours": 4.0}
    diverge = [e.point_id for e in events(state_path, "diverge")]
    assert sorted(diverge) == [1, 2, 2]
    assert any("new seed 1" in e.message for e in events(state_path, "status") if e.point_id == 1)


def test_a_diverged_point_fails_at_once_under_on_divergence_fail(tmp_path: Path) -> None:
    state_path = setup_run(
        tmp_path, {"modes": {"0": ["diverged"]}}, train={"on_divergence": "fail"}
    )
    run_until_done(state_path, tmp_path)
    point = load_state(state_path).point(0)
    assert point.status is S.FAILED and point.attempts == 1 and seeds_of(state_path, 0) == [0]
    assert "on_divergence = fail" in point.reason and "not finite" in point.reason
    assert point.extra["guard_saved"]["gpu_hours"] == 2.0


def test_with_refill_a_slow_training_does_not_hold_up_the_search(tmp_path: Path) -> None:
    """Point 5, the first spline proposal, trains for seconds; with refill the other slot
    of its batch is proposed again as each of its partners finishes."""
    journal = tmp_path / "journal.txt"
    behaviour = {"journal": str(journal), "modes": {"5": ["slow"]}, "slow_seconds": 4.0}
    experiment = {"refill": True, "max_points": 9}
    state_path = setup_run(tmp_path, behaviour, experiment=experiment)
    outcome = run_until_done(state_path, tmp_path, max_cycles=2000)
    state = load_state(state_path)
    assert outcome.ok and "max_points" in outcome.reason
    assert [p.status for p in state.points] == [S.DONE] * 9
    ends = {int(w[1]): float(w[3]) for w in map(str.split, journal.read_text().splitlines())
            if w[0] == "end"}  # fmt: skip
    later = [i for i in range(6, 9) if ends[i] < ends[5]]
    assert later == [6, 7, 8], "the points after 5 were proposed and trained while it trained"
    assert [p.batch for p in state.points[5:]] == [1, 1, 2, 3]  # one refill at a time
    assert all(p.predicted is not None for p in state.points[5:])


def test_a_result_left_by_a_job_that_ended_before_its_cancel_is_the_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Cancelled between the job's end and the next cycle: recorded as that job's, not by hand."""
    state_path = setup_run(tmp_path, experiment={"max_points": 2, "batch_size": 2})
    run_until_done(state_path, tmp_path, max_cycles=1)  # submits points 0 and 1
    run = layout.run_dir(state_path)
    jobs = {p.id: p.job_id for p in load_state(state_path).points if p.job_id}
    assert set(jobs) == {0, 1}
    scheduler = LocalScheduler(layout.jobs_dir(run))
    deadline = time.monotonic() + 120
    while not all(s.is_finished() for s in scheduler.status(list(jobs.values())).values()):
        assert time.monotonic() < deadline, "the stand-in jobs did not end"
        time.sleep(0.1)
    capsys.readouterr()
    assert main(["cancel", "--state", str(state_path), "0", "1"]) == 0
    err = capsys.readouterr().err
    assert f"job {jobs[0]} had ended; a result it wrote is still recorded" in err
    by_hand = layout.point_dir(run, 1) / "result.json"  # a person runs point 1 again by hand
    os.utime(by_hand, (time.time() + 5, time.time() + 5))
    run_until_done(state_path, tmp_path, max_cycles=1)
    state = load_state(state_path)
    assert [state.point(i).status for i in (0, 1)] == [S.DONE, S.DONE]
    ours = [e.message for e in events(state_path, "ingest") if e.point_id == 0]
    assert ours == [
        f"result of job {jobs[0]}, which had ended before the cancel: {state.point(0).value:.6g}"
    ]
    hand = [e.message for e in events(state_path, "ingest-by-hand") if e.point_id == 1]
    assert len(hand) == 1 and "outside the controller for a cancelled point" in hand[0]
