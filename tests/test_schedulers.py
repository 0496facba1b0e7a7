"""Scheduler backends: translation tables and Slurm's parsers on recorded output, and the
local backend. LSF, PBS, Flux and Slurm are in test_backends.py and test_backend_<name>.py."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from scheduler_contract import SchedulerContract, finished, wait_for

from nas.cluster import (
    JobState,
    LocalScheduler,
    LsfScheduler,
    SchedulerError,
    SlurmScheduler,
    get_scheduler,
)
from nas.cluster.lsf import parse_bjobs
from nas.cluster.slurm import parse_listing, parse_sbatch, parse_scontrol, parse_state
from nas.config import ClusterConfig

FAKES = Path(__file__).parent / "fakes"


# --------------------------------------------------------------------------- pure parsing


def test_finished_states() -> None:
    done = {s for s in JobState if s.is_finished()}
    assert done == {JobState.COMPLETED, JobState.FAILED, JobState.OUT_OF_MEMORY,
                    JobState.CANCELLED, JobState.TIMEOUT}  # fmt: skip


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("PENDING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("COMPLETED", JobState.COMPLETED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("NODE_FAIL", JobState.FAILED),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("BOOT_FAIL", JobState.FAILED),
        ("PREEMPTED", JobState.TIMEOUT),
        ("DEADLINE", JobState.TIMEOUT),
        ("TIMEOUT", JobState.TIMEOUT),
        ("SUSPENDED", JobState.HELD),
    ],
)
def test_slurm_states(code: str, state: JobState) -> None:
    assert parse_state(code) is state


def test_unknown_codes_warn_and_are_unknown(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_state("WIBBLE") is JobState.UNKNOWN
        assert parse_bjobs("7|WOBBLE|-|n\n")[0].state is JobState.UNKNOWN
    assert "unknown job state 'WIBBLE'" in caplog.text
    assert "unknown job state 'WOBBLE'" in caplog.text


def test_slurm_parsers() -> None:
    assert parse_sbatch("4242\n") == "4242"
    assert parse_sbatch("17;cluster2\n") == "17"
    with pytest.raises(SchedulerError, match="sbatch answered no job id: 'Submitted'"):
        parse_sbatch("Submitted")
    listing = parse_listing("12|RUNNING|a|b\n12.batch|RUNNING|batch\n13|CANCELLED by 0|x\n\n")
    assert [(r.job_id, r.state, r.name) for r in listing] == [
        ("12", JobState.RUNNING, "a|b"),
        ("13", JobState.CANCELLED, "x"),
    ]
    line = "JobId=5 JobName=x JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0"
    assert parse_scontrol(line) == {
        "JobId": "5", "JobName": "x", "JobState": "FAILED", "Reason": "NonZeroExitCode",
        "ExitCode": "3:0",
    }  # fmt: skip


def test_get_scheduler(tmp_path: Path) -> None:
    assert isinstance(get_scheduler(ClusterConfig(backend="slurm"), local_root=tmp_path),
                      SlurmScheduler)  # fmt: skip
    assert isinstance(get_scheduler(ClusterConfig(backend="lsf"), local_root=tmp_path),
                      LsfScheduler)  # fmt: skip
    local = get_scheduler(ClusterConfig(), local_root=tmp_path / "jobs", timeout=5)
    assert isinstance(local, LocalScheduler)
    assert local.root == tmp_path / "jobs" and local.timeout == 5


def test_submit_refuses_bad_names_and_missing_scripts(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs")
    with pytest.raises(ValueError, match="job name: expected letters.*'a b'"):
        scheduler.submit(tmp_path / "x.sh", job_name="a b", cwd=tmp_path)
    with pytest.raises(SchedulerError, match="local: job script '.*nope.sh' does not exist"):
        scheduler.submit(tmp_path / "nope.sh", job_name="ok", cwd=tmp_path)


# --------------------------------------------------------------------------- local


class TestLocalContract(SchedulerContract):
    timeout = 20.0

    @pytest.fixture()
    def scheduler(self, tmp_path: Path) -> LocalScheduler:
        return LocalScheduler(tmp_path / "jobs")

    @pytest.fixture()
    def fresh_scheduler(self, scheduler: LocalScheduler) -> LocalScheduler:
        return LocalScheduler(scheduler.root)


def _running_local_job(scheduler: LocalScheduler, folder: Path, body: str) -> tuple[str, int]:
    """A local job that has started ``body``, and its wrapper's pid."""
    script = folder / "job.sh"
    script.write_text("touch started\n" + body)
    job_id = scheduler.submit(script, job_name="lost", cwd=folder)
    wait_for(scheduler, job_id, lambda s: (folder / "started").exists(), 10)
    pid_file = scheduler.root / job_id / "pid"
    return job_id, int(pid_file.read_text())


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_local_job_killed_with_its_wrapper_is_failed(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs")
    job_id, wrapper = _running_local_job(scheduler, tmp_path, "sleep 60\n")
    os.killpg(wrapper, 9)
    assert wait_for(scheduler, job_id, finished, 120) is JobState.FAILED
    assert "without an exit code" in scheduler.reason(job_id)


def test_local_job_runs_on_while_its_trainer_outlives_the_wrapper(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs")
    job_id, wrapper = _running_local_job(scheduler, tmp_path, "sleep 60\n")
    os.kill(wrapper, 9)  # the wrapper alone: its script (the trainer) runs on
    wait_for(scheduler, job_id, lambda s: _gone(wrapper), 10)
    assert scheduler.status([job_id])[job_id] is JobState.RUNNING
    assert LocalScheduler(scheduler.root).status([job_id])[job_id] is JobState.RUNNING
    (scheduler.root / job_id / "pid").unlink()  # and its pid record is lost, long after the start
    old = time.time() - 3600
    os.utime(scheduler.root / job_id / "name", (old, old))
    assert LocalScheduler(scheduler.root).status([job_id])[job_id] is JobState.RUNNING
    scheduler.cancel(job_id)
    assert scheduler.status([job_id])[job_id] is JobState.CANCELLED


def test_local_job_ends_only_after_what_its_script_left_behind(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs")
    body = "sleep 300 &\necho $! >left\nsetsid sleep 300 &\necho $! >escaped\nsleep 1\nexit 1\n"
    job_id, _ = _running_local_job(scheduler, tmp_path, body)
    assert wait_for(scheduler, job_id, finished, 120) is JobState.FAILED
    left, escaped = (int((tmp_path / name).read_text()) for name in ("left", "escaped"))
    assert _gone(left) and _gone(escaped), "a job is over only when all its processes are"


def test_local_ignores_ids_it_never_gave_out(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs")
    (tmp_path / "jobs" / "x").mkdir(parents=True)
    (tmp_path / "jobs" / "x" / "name").write_text("planted\n")
    assert scheduler.status(["../jobs/x", "x"]) == {
        "../jobs/x": JobState.UNKNOWN,
        "x": JobState.UNKNOWN,
    }
    with pytest.raises(SchedulerError, match="local: no job 'x' under"):
        scheduler.cancel("x")


def test_local_job_cancelled_right_after_submission_never_runs_on(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs")
    script = tmp_path / "job.sh"
    script.write_text("until [ -e go ]; do sleep 0.05; done\ntouch ran\n")
    job_id = scheduler.submit(script, job_name="quick", cwd=tmp_path)
    scheduler.cancel(job_id)
    assert wait_for(scheduler, job_id, finished, 120) is JobState.CANCELLED
    (tmp_path / "go").touch()  # a job still running would now go on to its end
    time.sleep(1.0)
    assert not (tmp_path / "ran").exists()
    assert scheduler.reason(job_id) == "cancelled"
