"""What only LSF does: bsub's and bjobs' formats, ``#BSUB`` lines, jsrun's ranks.

IBM Spectrum LSF is closed software, so it runs through the fake bsub, bjobs,
bkill and jsrun of tests/fakes; what every backend does is in test_backends.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import FAKES, Backend
from scheduler_contract import finished, wait_for

from nas.cluster import JobState, LsfScheduler, SchedulerError, get_scheduler
from nas.cluster.lsf import parse_bjobs, parse_bsub
from nas.config import ClusterConfig

#: The tests that need the LSF double: the one backend fixture, on its LSF row.
ON_LSF = pytest.mark.parametrize("backend", ["lsf"], indirect=True)


def test_lsf_parsers() -> None:
    assert parse_bsub("Job <31337> is submitted to queue <batch>.\n") == "31337"
    assert parse_bsub("Job <5> is submitted to default queue <normal>.") == "5"
    with pytest.raises(SchedulerError, match="bsub answered no job id"):
        parse_bsub("Request aborted by esub.")
    records = parse_bjobs(
        "1|PEND|-|a\n2|RUN|-|b c\n3|DONE|-|d\n4|EXIT|-|e\n5|USUSP|-|f\n"
        "6|EXIT|TERM_OWNER: job killed by owner|g\n7|EXIT|TERM_RUNLIMIT: job killed after "
        "reaching LSF run time limit|h\n8|EXIT|TERM_MEMLIMIT: job killed|i\n"
    )
    assert [(r.job_id, r.state, r.name) for r in records] == [
        ("1", JobState.PENDING, "a"),
        ("2", JobState.RUNNING, "b c"),
        ("3", JobState.COMPLETED, "d"),
        ("4", JobState.FAILED, "e"),
        ("5", JobState.HELD, "f"),
        ("6", JobState.CANCELLED, "g"),
        ("7", JobState.TIMEOUT, "h"),
        ("8", JobState.OUT_OF_MEMORY, "i"),
    ]


@ON_LSF
def test_lsf_reads_directives_and_logs(backend: Backend, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/bash\n#BSUB -o "out %J.txt"\n#BSUB -q debug\necho "$LSB_JOBNAME"\n')
    scheduler = LsfScheduler()
    job_id = scheduler.submit(script, job_name="named-1", cwd=tmp_path)
    assert wait_for(scheduler, job_id, finished, backend.job_seconds) is JobState.COMPLETED
    assert (tmp_path / f"out {job_id}.txt").read_text() == "named-1\n"


@ON_LSF
def test_a_failing_status_call_keeps_the_last_state(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = tmp_path / "job.sh"
    script.write_text("sleep 30\n")
    scheduler = LsfScheduler(timeout=60)
    job_id = scheduler.submit(script, job_name="keep", cwd=tmp_path)
    wait_for(scheduler, job_id, lambda s: s is JobState.RUNNING, backend.job_seconds)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with caplog.at_level(logging.WARNING):
        assert scheduler.status([job_id, "77"]) == {
            job_id: JobState.RUNNING,
            "77": JobState.UNKNOWN,
        }
    assert "status query failed, keeping last known states" in caplog.text
    assert "program not found on PATH" in caplog.text
    with pytest.raises(SchedulerError, match="lsf: cancelling job .* failed"):
        scheduler.cancel(job_id)
    monkeypatch.setenv("PATH", f"{FAKES}:/usr/bin:/bin")
    scheduler.cancel(job_id)
    assert wait_for(scheduler, job_id, finished, backend.job_seconds) is JobState.CANCELLED


@ON_LSF
def test_lsf_without_any_job_is_an_empty_answer(
    backend: Backend,
) -> None:
    assert LsfScheduler().find_by_name(["nothing-here"]) == {}


@ON_LSF
def test_jsrun_starts_every_rank(backend: Backend, tmp_path: Path) -> None:
    from nas.cluster.proc import run_command

    out = run_command(
        [str(FAKES / "jsrun"), "-n", "2", "-r", "1", "-a", "3", "-g", "0", "-c", "3",
         "bash", "-c", 'echo "$JSM_NAMESPACE_RANK/$JSM_NAMESPACE_SIZE/$JSM_NAMESPACE_LOCAL_RANK"'],
    ).stdout  # fmt: skip
    assert sorted(out.split()) == ["0/6/0", "1/6/1", "2/6/2", "3/6/0", "4/6/1", "5/6/2"]
    failed = run_command([str(FAKES / "jsrun"), "-n", "2", "bash", "-c", "exit 4"], check=False)
    assert failed.returncode == 4


#: Stands in for python under jsrun or alone: one file per rank with argv and env.
RANK_PYTHON = """#!/bin/bash
rank=${JSM_NAMESPACE_RANK:-0}
printf '%s\\n' "$rank/${JSM_NAMESPACE_SIZE:-1}" "$MASTER_ADDR:$MASTER_PORT" "$@" >"rank-$rank"
"""


@ON_LSF
@pytest.mark.parametrize(("kind", "ranks"), [("local", 1), ("lsf", 3)])
def test_a_rendered_script_runs_end_to_end(
    backend: Backend, tmp_path: Path, kind: str, ranks: int
) -> None:
    from nas.cluster.render import render_job_script, write_job_script

    point = tmp_path / "point a 0"
    point.mkdir()
    python = tmp_path / "python"
    python.write_text(RANK_PYTHON)
    python.chmod(0o755)
    cluster = ClusterConfig(backend=kind, python=str(python), ranks_per_node=ranks,
                            cores_per_node=3, walltime_minutes=10)  # fmt: skip
    text = render_job_script(kind, cluster=cluster, point_dir=point, job_name="e2e-lsf",
                             stdout_path="seg-%J.out")  # fmt: skip
    script = write_job_script(point / "job.sh", text)
    scheduler = get_scheduler(cluster, local_root=tmp_path / "jobs")
    job_id = scheduler.submit(script, job_name="e2e-lsf", cwd=point)
    assert wait_for(scheduler, job_id, finished, backend.job_seconds) is JobState.COMPLETED
    for rank in range(ranks):
        lines = (point / f"rank-{rank}").read_text().splitlines()
        assert lines[0] == f"{rank}/{ranks}"
        assert lines[2:6] == ["-m", "nas.trial.launch", "--point-dir", str(point)]
    if kind == "lsf":
        assert lines[1] == ":"  # the trainer derives the rendezvous itself (launch.py)
        assert (point / f"seg-{job_id}.out").exists()
