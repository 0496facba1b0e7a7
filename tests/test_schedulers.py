"""Scheduler backends: translation tables and Slurm's parsers on recorded output, and the
local backend. LSF, PBS, Flux and Slurm are in test_backends.py and test_backend_<name>.py."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
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
    local,
    processes,
)
from nas.cluster.lsf import parse_bjobs
from nas.cluster.processes import ProcessTable
from nas.cluster.slurm import parse_listing, parse_sbatch, parse_scontrol, parse_state
from nas.config import ClusterConfig

FAKES = Path(__file__).parent / "fakes"
#: A walltime (seconds) no local test job reaches, so that its watchdog runs along.
LONG = 600.0


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
    local = get_scheduler(ClusterConfig(walltime_minutes=7), local_root=tmp_path / "jobs",
                          timeout=5)  # fmt: skip
    assert isinstance(local, LocalScheduler)
    assert local.root == tmp_path / "jobs" and local.timeout == 5
    assert local.walltime == 7 * 60, "the local backend enforces [cluster] walltime_minutes"


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
        return LocalScheduler(tmp_path / "jobs", walltime=LONG)

    @pytest.fixture()
    def fresh_scheduler(self, scheduler: LocalScheduler) -> LocalScheduler:
        return LocalScheduler(scheduler.root, walltime=LONG)


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
    scheduler = LocalScheduler(tmp_path / "jobs", walltime=LONG)
    job_id, wrapper = _running_local_job(scheduler, tmp_path, "sleep 60\n")
    os.killpg(wrapper, 9)
    assert wait_for(scheduler, job_id, finished, 120) is JobState.FAILED
    assert "without an exit code" in scheduler.reason(job_id)


def test_local_job_runs_on_while_its_trainer_outlives_the_wrapper(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs", walltime=LONG)
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
    scheduler = LocalScheduler(tmp_path / "jobs", walltime=LONG)
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
    scheduler = LocalScheduler(tmp_path / "jobs", walltime=LONG)
    script = tmp_path / "job.sh"
    script.write_text("until [ -e go ]; do sleep 0.05; done\ntouch ran\n")
    job_id = scheduler.submit(script, job_name="quick", cwd=tmp_path)
    scheduler.cancel(job_id)
    assert wait_for(scheduler, job_id, finished, 120) is JobState.CANCELLED
    (tmp_path / "go").touch()  # a job still running would now go on to its end
    time.sleep(1.0)
    assert not (tmp_path / "ran").exists()
    assert scheduler.reason(job_id) == "cancelled"


def test_ending_a_job_signals_its_session_group_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """At once, so that a script never outlives its child and goes on (``sleep; touch``)."""
    listings = iter([[3, 5, 9, 17], []])
    sent: list[tuple[int, bool]] = []
    monkeypatch.setattr(processes, "_others", lambda job, session, spare: next(listings))
    monkeypatch.setattr(processes, "_signal",
                        lambda pid, signum, group: sent.append((pid, group)))  # fmt: skip
    assert processes.end_job("job", 9, grace=1.0)
    assert sent[0] == (9, True) and sorted(sent[1:]) == [(3, False), (5, False), (17, False)]


# --------------------------------------------------------------------------- local walltime


def _until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held, polling without asking any scheduler."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"still not so after {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _walltime_job(tmp_path: Path, body: str) -> tuple[LocalScheduler, str, int]:
    """A job of a 1.2 s walltime that has started ``body``; the pid of its script's shell."""
    scheduler = LocalScheduler(tmp_path / "jobs", walltime=1.2)
    script = tmp_path / "job.sh"
    script.write_text("echo $$ >script.tmp && mv script.tmp script.pid\n" + body)
    job_id = scheduler.submit(script, job_name="forever", cwd=tmp_path)
    _until((tmp_path / "script.pid").exists, 10)
    return scheduler, job_id, int((tmp_path / "script.pid").read_text())


def test_local_job_past_its_walltime_ends_as_a_timeout_without_the_controller(
    tmp_path: Path,
) -> None:
    start = time.monotonic()
    _, job_id, script = _walltime_job(tmp_path, "sleep 1000\n")
    # No scheduler is asked meanwhile: the wrapper alone enforces the walltime.
    _until(lambda: _gone(script), 10)
    assert 1.2 <= time.monotonic() - start < 5
    restarted = LocalScheduler(tmp_path / "jobs")  # a controller started afterwards
    assert wait_for(restarted, job_id, finished, 10) is JobState.TIMEOUT
    assert restarted.reason(job_id) == "walltime of 0.02 min reached (exit code 143 (signal 15))"
    assert not ProcessTable.snapshot().members(job_id, None), "its sleep is gone too"


def test_local_trainer_stopping_at_its_walltime_is_a_timeout(tmp_path: Path) -> None:
    body = "trap 'touch stopped; exit 3' TERM\nsleep 1000 &\nwait\n"
    scheduler, job_id, _ = _walltime_job(tmp_path, body)
    assert wait_for(scheduler, job_id, finished, 10) is JobState.TIMEOUT
    assert (tmp_path / "stopped").exists(), "SIGTERM first, so that a trainer can checkpoint"
    assert scheduler.reason(job_id) == "walltime of 0.02 min reached (exit code 3)"


def test_local_job_ignoring_sigterm_at_its_walltime_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "KILL_GRACE", 0.5)
    body = "trap '' TERM\nsetsid sleep 1000 &\necho $! >escaped\nsleep 1000\n"
    scheduler, job_id, script = _walltime_job(tmp_path, body)
    assert _until(lambda: _gone(script), 10) < 5
    assert not (scheduler.root / job_id / "exitcode").exists(), "the wrapper was killed too"
    assert wait_for(scheduler, job_id, finished, 10) is JobState.TIMEOUT
    assert _gone(int((tmp_path / "escaped").read_text())), "and what left the session"
    assert scheduler.reason(job_id) == "walltime of 0.02 min reached (killed)"


def test_local_job_ending_within_its_walltime_stops_its_watchdog(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "jobs", walltime=LONG)
    script = tmp_path / "job.sh"
    script.write_text("exit 7\n")
    job_id = scheduler.submit(script, job_name="quick", cwd=tmp_path)
    _until(lambda: (scheduler.root / job_id / "exitcode").exists(), 10)
    _until(lambda: not ProcessTable.snapshot().members(job_id, None), 2)  # nothing left
    assert scheduler.status([job_id])[job_id] is JobState.FAILED
    assert scheduler.reason(job_id) == "exit code 7"
    assert not (scheduler.root / job_id / "timeout").exists()


def test_local_walltime_must_be_positive(tmp_path: Path) -> None:
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="walltime must be a positive number of seconds"):
            LocalScheduler(tmp_path, walltime=bad)
