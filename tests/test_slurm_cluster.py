"""The Slurm backend and Slurm job scripts against a real one-node cluster."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest
from scheduler_contract import SchedulerContract, finished, wait_for
from slurm.cluster_fixture import slurm_cluster  # noqa: F401 - the session fixture

from nas.cluster import JobState, SlurmScheduler
from nas.cluster.proc import run_command
from nas.cluster.render import render_job_script, write_job_script
from nas.config import ClusterConfig

pytestmark = pytest.mark.slurm

#: Stands in for python under srun: one file per rank with its argv and the
#: rendezvous the trainer's own rule derives from the allocation.
RANK_PYTHON = f"""#!/bin/bash
rendezvous=$({sys.executable} -c 'import os; from nas.train.launch import detect
env = detect(os.environ); print(f"{{env.master_addr}}:{{env.master_port}}")')
printf '%s\\n' "$SLURM_PROCID/$SLURM_NTASKS" "$rendezvous" "$@" >"rank-$SLURM_PROCID"
"""


@pytest.fixture()
def scheduler(slurm_cluster: str) -> SlurmScheduler:  # noqa: F811
    return SlurmScheduler(timeout=30)


class TestSlurmContract(SchedulerContract):
    timeout = 60.0

    @pytest.fixture()
    def fresh_scheduler(self, slurm_cluster: str) -> SlurmScheduler:  # noqa: F811
        return SlurmScheduler(timeout=30)


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _submit_rendered(
    scheduler: SlurmScheduler, point: Path, python: Path, **cluster: object
) -> str:
    config = ClusterConfig(backend="slurm", python=str(python), **cluster)
    text = render_job_script("slurm", cluster=config, point_dir=point, job_name="e2e-1",
                             stdout_path="slurm-%j.out")  # fmt: skip
    script = write_job_script(point / "job.sh", text)
    return scheduler.submit(script, job_name="e2e-1", cwd=point)


def test_a_rendered_script_runs_two_ranks(scheduler: SlurmScheduler, tmp_path: Path) -> None:
    point = tmp_path / "point a 0"
    point.mkdir()
    python = _executable(tmp_path / "python", RANK_PYTHON)
    started = time.monotonic()
    job_id = _submit_rendered(scheduler, point, python, ranks_per_node=2, cores_per_node=2,
                              walltime_minutes=5, signal_seconds=60)  # fmt: skip
    state = wait_for(scheduler, job_id, finished, 60)
    log = (point / f"slurm-{job_id}.out").read_text()
    assert state is JobState.COMPLETED, log
    print(f"slurm round trip of a 2-rank job: {time.monotonic() - started:.2f} s")
    rendezvous = set()
    for rank in (0, 1):
        lines = (point / f"rank-{rank}").read_text().splitlines()
        assert lines[0] == f"{rank}/2"
        rendezvous.add(lines[1])  # derived from the allocation by every rank alike
        assert lines[2:6] == ["-m", "nas.train", "--point-dir", str(point)]
        assert lines[6] == "--deadline"
        assert 0 < int(lines[7]) - time.time() <= 240
    (address_and_port,) = rendezvous
    address, port = address_and_port.rsplit(":", 1)
    assert address and 15000 <= int(port) < 32768


def test_scancel_by_a_person_is_detected(scheduler: SlurmScheduler, tmp_path: Path) -> None:
    script = _executable(tmp_path / "job.sh", "#!/bin/bash\nsleep 120\n")
    job_id = scheduler.submit(script, job_name="by-hand", cwd=tmp_path)
    wait_for(scheduler, job_id, lambda s: s is JobState.RUNNING, 30)
    run_command(["scancel", job_id])
    assert wait_for(scheduler, job_id, finished, 30) is JobState.CANCELLED
    assert "JobState=CANCELLED" in scheduler.reason(job_id)


def test_without_accounting_an_unknown_job_is_unknown(
    scheduler: SlurmScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert scheduler.status(["99999"]) == {"99999": JobState.UNKNOWN}
    assert "accounting is disabled" in caplog.text
    assert "no record of job 99999" in scheduler.reason("99999")


@pytest.mark.slow
def test_time_limit_warns_the_step_then_times_out(
    scheduler: SlurmScheduler, tmp_path: Path
) -> None:
    marker = tmp_path / "usr2"
    python = _executable(
        tmp_path / "python",
        f"#!/bin/bash\ntrap 'date +%s >>{marker}' USR2\nwhile :; do sleep 0.2; done\n",
    )
    job_id = _submit_rendered(scheduler, tmp_path, python, walltime_minutes=1,
                              signal_seconds=40)  # fmt: skip
    wait_for(scheduler, job_id, lambda s: s is JobState.RUNNING, 30)
    started = time.time()
    assert wait_for(scheduler, job_id, finished, 150) is JobState.TIMEOUT
    assert marker.exists(), "USR2 never reached the job step"
    assert int(marker.read_text().split()[0]) < time.time()
    print(f"time limit of 1 min reached after {time.time() - started:.0f} s")
