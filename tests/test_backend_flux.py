"""What only Flux does: its JSON and ids, its directives, the warning signal and its variables.

Flux runs through the fake ``flux`` (batch, run, jobs, cancel, getattr, job id)
of tests/fakes; what every backend does is in test_backends.py.

No Flux can be installed from this machine's package registries (Debian has
no flux-core), so the backend, its job scripts and the real trainer run
against a double that reads ``#flux:`` directives, answers ``flux jobs
--json`` as flux-core does and starts the tasks with Flux's variables.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Backend
from scheduler_contract import finished, wait_for

from nas.cluster import FluxScheduler, JobState, SchedulerError
from nas.cluster.flux import job_id, parse_batch, parse_jobs
from nas.cluster.render import ScriptError, render_job_script, write_job_script
from nas.config import ClusterConfig
from nas.train.launch import LaunchError, detect, port_for_job

#: The tests that need the Flux double: the one backend fixture, on its Flux row.
ON_FLUX = pytest.mark.parametrize("backend", ["flux"], indirect=True)
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- parsing


def test_flux_states_and_results() -> None:
    listing = {"jobs": [
        {"id": 1, "name": "a", "state": "DEPEND"},
        {"id": 2, "name": "b", "state": "PRIORITY"},
        {"id": 3, "name": "c", "state": "SCHED"},
        {"id": 4, "name": "d", "state": "RUN"},
        {"id": 5, "name": "e", "state": "CLEANUP"},
        {"id": 6, "name": "f", "state": "INACTIVE", "result": "COMPLETED", "returncode": 0},
        {"id": 7, "name": "g", "state": "INACTIVE", "result": "FAILED", "returncode": 3},
        {"id": 8, "name": "h", "state": "INACTIVE", "result": "CANCELED", "returncode": -128},
        {"id": 9, "name": "i", "state": "INACTIVE", "result": "TIMEOUT", "returncode": -15},
        {"jobid": "ƒ2", "name": "no integer id"},
    ]}  # fmt: skip
    records = parse_jobs(json.dumps(listing))
    assert [(r.job_id, r.state) for r in records] == [
        ("1", JobState.PENDING), ("2", JobState.PENDING), ("3", JobState.PENDING),
        ("4", JobState.RUNNING), ("5", JobState.RUNNING), ("6", JobState.COMPLETED),
        ("7", JobState.FAILED), ("8", JobState.CANCELLED), ("9", JobState.TIMEOUT),
    ]  # fmt: skip
    one = parse_jobs(json.dumps({"id": 10, "name": "j", "state": "RUN"}))
    assert [(r.job_id, r.name) for r in one] == [("10", "j")]


def test_f58_job_ids_become_decimal() -> None:
    # RFC 19's own example pair: ƒ2 is 1, and flux-batch(1)'s ƒM7Zq9AKHno decodes the same way.
    assert job_id("ƒ2") == "1" and job_id("f2") == "1" and job_id("0042") == "42"
    number = 0
    for digit in "M7Zq9AKHno":
        number = number * 58 + "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".index(
            digit
        )
    assert parse_batch("ƒM7Zq9AKHno\n") == str(number)
    with pytest.raises(SchedulerError, match="flux batch answered no job id"):
        parse_batch("flux-batch: ERROR: [Errno 19] No such device: unsatisfiable request")
    with pytest.raises(SchedulerError, match="flux jobs answered no JSON"):
        parse_jobs("flux-jobs: ERROR: Unable to connect to Flux")


def test_directives_and_the_flux_run_step(tmp_path: Path) -> None:
    cluster = ClusterConfig(backend="flux", nodes=34, gpus_per_node=4, cores_per_node=96,
                            walltime_minutes=120, signal_seconds=600, account="guests",
                            queue="pbatch", constraint="rabbit")  # fmt: skip
    text = render_job_script("flux", cluster=cluster, point_dir=tmp_path / "p 7",
                             job_name="e-p7", stdout_path="logs/e-p7.log")  # fmt: skip
    directives = [line for line in text.splitlines() if line.startswith("#flux:")]
    assert directives == [
        "#flux: --job-name=e-p7", "#flux: -N 34", "#flux: -n 136", "#flux: -c 24",
        "#flux: -g 1", "#flux: -t 120m", "#flux: --exclusive", "#flux: --output=logs/e-p7.log",
        "#flux: --signal=USR2@600s", "#flux: --queue=pbatch", "#flux: --bank=guests",
        "#flux: --requires=rabbit",
    ]  # fmt: skip
    assert text.splitlines()[1:13] == directives, "RFC 36: directives grouped at the top"
    launch = "flux run -N 34 -n 136 -c 24 -g 1 -o gpu-affinity=per-task python3 -m nas.trial.launch"
    assert launch in text and "-- python3 -m nas.train &" in text
    assert "MASTER_" not in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    uneven = ClusterConfig(backend="flux", gpus_per_node=4, ranks_per_node=3, cores_per_node=3)
    with pytest.raises(ScriptError, match=r"gpus_per_node \(4\) is not a multiple"):
        render_job_script("flux", cluster=uneven, point_dir=tmp_path, job_name="x",
                          stdout_path="x.log")  # fmt: skip
    with pytest.raises(ScriptError, match="read .* as a template"):
        render_job_script("flux", cluster=cluster, point_dir=tmp_path, job_name="x",
                          stdout_path="{{id}}.log")  # fmt: skip


# --------------------------------------------------------------------------- the double


@ON_FLUX
def test_the_time_limit_is_a_timeout(backend: Backend, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#flux: -t 1s\nsleep 30\n")
    scheduler = FluxScheduler()
    job = scheduler.submit(script, job_name="limit", cwd=tmp_path)
    assert wait_for(scheduler, job, finished, backend.job_seconds) is JobState.TIMEOUT
    assert "result=TIMEOUT" in scheduler.reason(job)


@ON_FLUX
def test_the_warning_reaches_the_trainer_and_the_step_survives_it(
    backend: Backend, tmp_path: Path
) -> None:
    """Flux sends --signal's USR2 to the batch script and the step alike: the trainer
    stops on it, `flux run` ignores it, and the job ends with the trainer's status."""
    point = tmp_path / "point"
    point.mkdir()
    python = tmp_path / "python"
    python.write_text("#!/bin/bash\ntrap 'echo usr2 >>got-usr2; exit 0' USR2\n"
                      "while :; do sleep 0.05; done\n")  # fmt: skip
    python.chmod(0o755)
    cluster = ClusterConfig(backend="flux", python=str(python), walltime_minutes=1,
                            signal_seconds=58)  # fmt: skip
    text = render_job_script("flux", cluster=cluster, point_dir=point, job_name="warned",
                             stdout_path="job.log")  # fmt: skip
    scheduler = FluxScheduler()
    job = scheduler.submit(write_job_script(point / "job.sh", text), job_name="warned",
                           cwd=point)  # fmt: skip
    assert wait_for(scheduler, job, finished, backend.job_seconds) is JobState.COMPLETED
    assert (point / "got-usr2").read_text().splitlines()[0] == "usr2"


@ON_FLUX
def test_flux_variables_alone_give_the_rendezvous(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"FLUX_TASK_RANK": "3", "FLUX_TASK_LOCAL_ID": "1", "FLUX_JOB_SIZE": "4",
           "FLUX_JOB_ID": "ƒ2Xs", "PMI_RANK": "3", "PMI_SIZE": "4",
           "FLUX_URI": "local:///x", "FAKE_FLUX_HOSTLIST": "tuolumne[1003-1004]",
           "PATH": os.environ["PATH"]}  # fmt: skip
    dist = detect(env)
    assert (dist.launcher, dist.rank, dist.world_size, dist.local_rank) == ("flux", 3, 4, 1)
    assert (dist.master_addr, dist.master_port) == ("tuolumne1003", port_for_job("ƒ2Xs"))
    with pytest.raises(LaunchError, match="flux getattr hostlist"):
        detect({**env, "PATH": "/nonexistent"})  # no flux to ask
