"""What only PBS does: its JSON, its directives, the PALS launch and a qstat that fails.

PBS Professional with PALS mpiexec runs through the fake qsub/qstat/qdel/mpiexec
of tests/fakes; what every backend does is in test_backends.py.

No PBS server can be installed from this machine's package registries
(Debian has no openpbs), so the backend, its job scripts and the real
trainer run against doubles that parse real argv and ``#PBS`` lines, answer
in PBS's JSON and start the ranks with the variables PALS sets.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Backend
from scheduler_contract import finished, wait_for

from nas.cluster import JobState, PbsScheduler, SchedulerError
from nas.cluster.pbs import parse_qstat, parse_qsub
from nas.cluster.render import ScriptError, render_job_script
from nas.config import ClusterConfig
from nas.train.launch import detect, port_for_job

#: The tests that need the PBS double: the one backend fixture, on its PBS row.
ON_PBS = pytest.mark.parametrize("backend", ["pbs"], indirect=True)


# --------------------------------------------------------------------------- parsing


def _qstat(**jobs: dict) -> str:
    return json.dumps({"timestamp": 1, "pbs_version": "2022.1", "pbs_server": "pbs01",
                       "Jobs": {f"{k.lstrip('_')}.pbs01": v for k, v in jobs.items()}})  # fmt: skip


def test_pbs_states_and_how_a_finished_job_ended() -> None:
    def job(state: str, **more: object) -> dict:
        return {"Job_Name": f"n{state}", "Job_Owner": "me@login1", "job_state": state, **more}

    text = _qstat(
        _1=job("Q"), _2=job("R"), _3=job("H"), _4=job("E"), _5=job("W"),
        _6=job("F", substate=92, Exit_status=0),
        _7=job("F", substate=93, Exit_status=3),
        _8=job("F", substate=91, Exit_status=271),  # qdel of a running job
        _9=job("F", substate=91),  # qdel of a queued job: no exit status
        _10=job("F", substate=93, Exit_status=-29),  # JOB_EXEC_KILL_WALLTIME
        _11=job("F", substate=93, Exit_status="-27"),  # JOB_EXEC_KILL_MEM, as text
        _12=job("F", substate=93, Exit_status=265),  # SIGKILL, not by qdel
        _13=job("F", substate=94),  # moved to another server
        _14=job("S"),
    )  # fmt: skip
    states = {r.job_id.split(".")[0]: r.state for r in parse_qstat(text)}
    assert states == {
        "1": JobState.PENDING, "2": JobState.RUNNING, "3": JobState.HELD,
        "4": JobState.RUNNING, "5": JobState.PENDING, "6": JobState.COMPLETED,
        "7": JobState.FAILED, "8": JobState.CANCELLED, "9": JobState.CANCELLED,
        "10": JobState.TIMEOUT, "11": JobState.OUT_OF_MEMORY, "12": JobState.FAILED,
        "13": JobState.UNKNOWN, "14": JobState.HELD,
    }  # fmt: skip
    mine = parse_qstat(_qstat(_1=job("Q"), _2={**job("Q"), "Job_Owner": "you@login1"}), user="me")
    assert [r.job_id for r in mine] == ["1.pbs01"], "another user's job of the same name is ignored"


def test_pbs_parsers_refuse_what_they_cannot_read() -> None:
    assert parse_qsub("1234.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov\n").startswith("1234.")
    assert parse_qsub("77\n") == "77"
    with pytest.raises(SchedulerError, match="qsub answered no job id"):
        parse_qsub("qsub: Unknown queue")
    with pytest.raises(SchedulerError, match="qstat answered no JSON"):
        parse_qstat("qstat: cannot connect to server pbs01 (errno=111)")
    assert parse_qstat(json.dumps({"timestamp": 1, "pbs_server": "x"})) == []  # no job known


def test_directives_and_the_pals_launch(tmp_path: Path) -> None:
    cluster = ClusterConfig(backend="pbs", nodes=34, gpus_per_node=4, cores_per_node=32,
                            walltime_minutes=125, account="MyProj", queue="prod",
                            constraint="system=polaris",
                            extra_directives=["-l filesystems=home:eagle"])  # fmt: skip
    text = render_job_script("pbs", cluster=cluster, point_dir=tmp_path / "p 7", job_name="e-p7",
                             stdout_path="logs/e-p7.log")  # fmt: skip
    for line in ["#PBS -N e-p7", "#PBS -l select=34:system=polaris", "#PBS -l place=scatter",
                 "#PBS -l walltime=02:05:00", "#PBS -k doe", "#PBS -o logs/e-p7.log",
                 "#PBS -j oe", "#PBS -A MyProj", "#PBS -q prod", "#PBS -l filesystems=home:eagle",
                 "mpiexec -n 136 --ppn 4 --depth 8 --cpu-bind depth python3 -m nas.trial.launch"]:  # fmt: skip
        assert line in text.splitlines() or line in text
    assert "MASTER_PORT" not in text, "the port is the launch wrapper's, from the job id"
    assert "export MASTER_ADDR" in text, "the first node names the rendezvous host once"
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    with pytest.raises(ScriptError, match="stdout_path: PBS reads .* as host:path"):
        render_job_script("pbs", cluster=cluster, point_dir=tmp_path, job_name="e-p7",
                          stdout_path="/a:b/log")  # fmt: skip


# --------------------------------------------------------------------------- the doubles


@ON_PBS
def test_the_walltime_kill_is_a_timeout_and_an_unknown_id_no_failure(
    backend: Backend, tmp_path: Path
) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#PBS -l walltime=00:00:01\nsleep 30\n")
    scheduler = PbsScheduler()
    job_id = scheduler.submit(script, job_name="limit", cwd=tmp_path)
    assert wait_for(scheduler, job_id, finished, backend.job_seconds) is JobState.TIMEOUT
    assert "Exit_status=-29" in scheduler.reason(job_id)
    fresh = PbsScheduler()
    assert fresh.status([job_id, "4242.fakepbs"]) == {
        job_id: JobState.TIMEOUT,
        "4242.fakepbs": JobState.UNKNOWN,
    }


@ON_PBS
def test_a_failing_qstat_keeps_the_last_states(backend: Backend, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsleep 30\n")
    scheduler = PbsScheduler(timeout=60)
    job_id = scheduler.submit(script, job_name="keep", cwd=tmp_path)
    wait_for(scheduler, job_id, lambda s: s is JobState.RUNNING, backend.job_seconds)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "qstat").write_text("#!/bin/bash\necho 'qstat: cannot connect to server' >&2\n"
                                  "echo '{\"timestamp\": 1}'\nexit 1\n")  # fmt: skip
    (broken / "qstat").chmod(0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{broken}:{os.environ['PATH']}")
        assert scheduler.status([job_id]) == {job_id: JobState.RUNNING}
    scheduler.cancel(job_id)
    assert wait_for(scheduler, job_id, finished, backend.job_seconds) is JobState.CANCELLED


def test_pals_and_pbs_variables_alone_give_the_rendezvous(tmp_path: Path) -> None:
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("x3001c0s13b0n0\n" * 4 + "x3001c0s19b1n0\n" * 4)
    env = {"PALS_RANKID": "5", "PALS_LOCAL_RANKID": "1", "PMI_RANK": "5", "PMI_SIZE": "8",
           "PMI_LOCAL_RANK": "1", "PBS_NODEFILE": str(nodefile), "PBS_JOBID": "42.pbs01"}  # fmt: skip
    dist = detect(env)
    assert (dist.launcher, dist.rank, dist.world_size, dist.local_rank) == ("pals", 5, 8, 1)
    assert (dist.master_addr, dist.master_port) == ("x3001c0s13b0n0", port_for_job("42.pbs01"))
    plain = {k: v for k, v in env.items() if not k.startswith("PALS_")}
    assert detect(plain).launcher == "pmi" and detect(plain).local_rank == 1
