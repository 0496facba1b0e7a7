"""What the controller does about jobs it cannot account for: forgotten ones, extra ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

from controller_support import experiment_text, init_state, leave_submitting, write_fake_trainer

from nas.cluster import LocalScheduler
from nas.cluster.local import new_job_id
from nas.control.loop import run_controller
from nas.pointdir import heartbeat, layout
from nas.record.state import PointStatus
from nas.record.store import load_state

S = PointStatus


def test_beating_keeps_the_file_fresh_and_removes_it_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / layout.HEARTBEAT_FILE
    with heartbeat.beating(tmp_path, interval=0.05):
        os.utime(path, (1.0, 1.0))
        deadline = time.monotonic() + 30
        while path.stat().st_mtime == 1.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heartbeat.fresh(tmp_path), "the thread beat again"
    assert not path.exists() and heartbeat.age(tmp_path) is None


def test_age_against_a_clock(tmp_path: Path) -> None:
    heartbeat.beat(tmp_path)
    modified = (tmp_path / layout.HEARTBEAT_FILE).stat().st_mtime
    assert heartbeat.fresh(tmp_path, now=modified + heartbeat.STALE - 1)
    assert not heartbeat.fresh(tmp_path, now=modified + heartbeat.STALE + 1)
    assert heartbeat.fresh(tmp_path, now=modified - 60), "a clock behind the server's"


def test_a_forgotten_job_is_not_retried_while_its_training_beats(tmp_path: Path) -> None:
    """The scheduler no longer knows the job (UNKNOWN): no retry until the heartbeat is stale."""
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 0.0})
    state_path = init_state(tmp_path, experiment_text(cluster={"python": str(fake)}))
    forgotten = new_job_id()
    folder = leave_submitting(state_path, tmp_path, job_id=forgotten)
    heartbeat.beat(folder)

    def cycles(count: int) -> None:
        run_controller(state_path, poll=0.05, max_cycles=count, progress=lambda s: None,
                       cwd=tmp_path)  # fmt: skip

    cycles(3)
    point = load_state(state_path).point(0)
    assert (point.status, point.attempts, point.job_id) == (S.SUBMITTED, 1, forgotten)
    stale = time.time() - heartbeat.STALE - 10
    os.utime(folder / layout.HEARTBEAT_FILE, (stale, stale))
    cycles(2)
    point = load_state(state_path).point(0)
    assert point.attempts == 2 and point.job_id != forgotten, point


def test_every_extra_job_under_a_points_name_is_cancelled(tmp_path: Path) -> None:
    """Three jobs carry one point's name (orphaned submitters): one is kept, both others go."""
    fake = write_fake_trainer(tmp_path / "fake", {"sleep": 30.0})
    state_path = init_state(tmp_path, experiment_text(cluster={"python": str(fake)}))
    folder = leave_submitting(state_path, tmp_path)
    run = layout.run_dir(state_path)
    scheduler = LocalScheduler(layout.jobs_dir(run))
    jobs = [scheduler.submit(folder / layout.JOB_SCRIPT, job_name="ctl-p0-r0a1s0", cwd=folder)
            for _ in range(3)]  # fmt: skip
    run_controller(state_path, poll=0.05, max_cycles=1, progress=lambda s: None, cwd=tmp_path)
    state = load_state(state_path)
    kept = state.point(0).job_id
    cancelled = [e for e in state.events if e.kind == "duplicate"]
    assert kept in jobs and len(cancelled) == 2, [e.message for e in cancelled]
    states = LocalScheduler(layout.jobs_dir(run)).status(jobs)
    assert [j for j in jobs if not states[j].is_finished()] == [kept]
    LocalScheduler(layout.jobs_dir(run)).cancel(kept)
