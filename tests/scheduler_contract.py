"""The behaviour every scheduler backend must show, as one test class.

A backend's test module subclasses :class:`SchedulerContract` and provides a
``scheduler`` fixture (and, through ``fresh_scheduler``, a second instance
that stands for a restarted controller).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nas.cluster import JobState, Scheduler
from nas.cluster.base import MISSING_POLLS

_names = itertools.count()


def wait_for(
    scheduler: Scheduler, job_id: str, done: Callable[[JobState], bool], timeout: float = 60.0
) -> JobState:
    """Poll until ``done(state)``; fail with the last state after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    state = JobState.UNKNOWN
    while time.monotonic() < deadline:
        state = scheduler.status([job_id])[job_id]
        if done(state):
            return state
        time.sleep(0.2)
    pytest.fail(f"job {job_id} still {state.name} after {timeout:g} s")


def finished(state: JobState) -> bool:
    return state.is_finished()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{time.time_ns() % 10**9}-{next(_names)}"


class SchedulerContract:
    """Submit, poll, fail, cancel and re-find jobs, the same on every backend."""

    #: Seconds a trivial job may take from submission to its final state.
    timeout = 60.0

    @staticmethod
    def _script(folder: Path, body: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "job.sh"
        script.write_text(f"#!/bin/bash\n{body}\n")
        return script

    def test_a_job_runs_to_completed(self, scheduler: Scheduler, tmp_path: Path) -> None:
        script = self._script(tmp_path, "echo $((6 * 7)) > answer")
        job_id = scheduler.submit(script, job_name=unique_name("ok"), cwd=tmp_path)
        assert wait_for(scheduler, job_id, finished, self.timeout) is JobState.COMPLETED
        assert (tmp_path / "answer").read_text() == "42\n"

    def test_a_failing_job_is_failed_with_a_reason(
        self, scheduler: Scheduler, tmp_path: Path
    ) -> None:
        script = self._script(tmp_path, "exit 3")
        job_id = scheduler.submit(script, job_name=unique_name("bad"), cwd=tmp_path)
        assert wait_for(scheduler, job_id, finished, self.timeout) is JobState.FAILED
        assert "3" in scheduler.reason(job_id)

    def test_cancel_stops_the_job(
        self, scheduler: Scheduler, fresh_scheduler: Scheduler, tmp_path: Path
    ) -> None:
        script = self._script(tmp_path, "touch started; sleep 120; touch finished")
        job_id = scheduler.submit(script, job_name=unique_name("cancel"), cwd=tmp_path)
        wait_for(scheduler, job_id, lambda s: s is JobState.RUNNING, self.timeout)
        deadline = time.monotonic() + 10
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        scheduler.cancel(job_id)
        assert wait_for(scheduler, job_id, finished, self.timeout) is JobState.CANCELLED
        assert fresh_scheduler.status([job_id]) == {job_id: JobState.CANCELLED}
        assert not (tmp_path / "finished").exists()

    def test_cancelling_a_finished_job_changes_nothing(
        self, scheduler: Scheduler, tmp_path: Path
    ) -> None:
        job_id = scheduler.submit(self._script(tmp_path, "true"), job_name=unique_name("late"),
                                  cwd=tmp_path)  # fmt: skip
        assert wait_for(scheduler, job_id, finished, self.timeout) is JobState.COMPLETED
        scheduler.cancel(job_id)
        assert scheduler.status([job_id]) == {job_id: JobState.COMPLETED}

    def test_find_by_name_after_a_restart(
        self, scheduler: Scheduler, fresh_scheduler: Scheduler, tmp_path: Path
    ) -> None:
        name = unique_name("find")
        script = self._script(tmp_path, "sleep 1")
        job_id = scheduler.submit(script, job_name=name, cwd=tmp_path)
        found = fresh_scheduler.find_by_name([name, unique_name("never-submitted")])
        assert list(found) == [name]
        assert found[name][0] == job_id
        assert found[name][1] in (JobState.PENDING, JobState.RUNNING, JobState.COMPLETED)
        wait_for(scheduler, job_id, finished, self.timeout)

    def test_ids_are_unique_and_status_is_one_batch(
        self, scheduler: Scheduler, tmp_path: Path
    ) -> None:
        ids = [
            scheduler.submit(
                self._script(tmp_path / str(i), f"exit {i}"), job_name=unique_name("batch"),
                cwd=tmp_path / str(i),
            )
            for i in range(2)
        ]  # fmt: skip
        assert len(set(ids)) == 2
        deadline = time.monotonic() + self.timeout
        states = scheduler.status(ids)
        while not all(s.is_finished() for s in states.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
            states = scheduler.status(ids)
        assert states == {ids[0]: JobState.COMPLETED, ids[1]: JobState.FAILED}

    def test_a_job_the_scheduler_never_had_is_unknown(self, scheduler: Scheduler) -> None:
        """Missing (wait) until confirmed gone, at the latest after MISSING_POLLS answers."""
        answers = [scheduler.status(["987654"])["987654"] for _ in range(MISSING_POLLS)]
        assert answers[-1] is JobState.UNKNOWN
        assert set(answers) <= {JobState.MISSING, JobState.UNKNOWN}
