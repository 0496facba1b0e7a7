"""The rendezvous on today's machines (review of the first run, findings 5, 9, 11).

Flux started inside a Slurm allocation (OLCF's Frontier guide: ``srun ... flux start``)
hands every task the broker's Slurm variables; PBS writes ``PBS_NODEFILE`` on the
sister nodes only with ``gen_nodefile_on_sister_mom`` (OpenPBS catch_child.c), so the
PBS job script works out the address once, on the first node.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nas.cluster.render import render_job_script, write_job_script
from nas.config import ClusterConfig
from nas.pointdir.rendezvous import detect, port_for_job

FAKES = Path(__file__).parent / "fakes"

#: What a task of a 2-node, 8-per-node ``flux run`` sees inside a 2-node Slurm job whose
#: ``srun -N2 -n2 flux start`` put one broker on each node (this task: node 1).
FLUX_IN_SLURM = {
    "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2",
    "SLURM_LOCALID": "0", "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
    "SLURM_STEP_NUM_NODES": "2", "SLURM_JOB_NODELIST": "frontier[00001-00002]",
    "SLURM_JOB_ID": "999", "FLUX_JOB_SIZE": "16", "FLUX_JOB_NNODES": "2",
    "FLUX_JOB_ID": "12345", "PMI_SIZE": "16",
}  # fmt: skip


def flux_task(rank: int) -> dict[str, str]:
    return {**FLUX_IN_SLURM, "FLUX_TASK_RANK": str(rank), "FLUX_TASK_LOCAL_ID": str(rank % 8),
            "PMI_RANK": str(rank)}  # fmt: skip


def test_flux_tasks_inside_slurm_get_their_own_ranks() -> None:
    seen = [detect(flux_task(rank)) for rank in range(16)]
    assert {env.launcher for env in seen} == {"flux"}
    assert [env.rank for env in seen] == list(range(16))
    assert [env.local_rank for env in seen] == [rank % 8 for rank in range(16)]
    assert {(env.world_size, env.local_world_size) for env in seen} == {(16, 8)}


def test_flux_tasks_inside_slurm_meet_on_the_flux_port_and_first_flux_host(
    tmp_path: Path,
) -> None:
    """Two Flux jobs in one Slurm allocation must not share a port; the instance's own
    host list (``flux getattr hostlist``) names task 0's node."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    flux = bin_dir / "flux"
    flux.write_text('#!/bin/bash\n[ "$*" = "getattr hostlist" ] && echo "frontier[00002-00003]"\n')
    flux.chmod(0o755)
    env = {**flux_task(9), "FLUX_URI": "local:///run/flux", "PATH": f"{bin_dir}:/usr/bin:/bin"}
    dist = detect(env)
    assert dist.master_addr == "frontier00002"
    assert dist.master_port == port_for_job("12345") != port_for_job("999")


def test_plain_slurm_pals_and_torchrun_keep_their_ranks() -> None:
    slurm = detect({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                    "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
                    "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_ID": "7", "PMI_RANK": "5",
                    "PMI_SIZE": "8"})  # fmt: skip
    assert (slurm.launcher, slurm.rank, slurm.local_rank, slurm.local_world_size) == (
        "slurm", 5, 1, 4)  # fmt: skip
    torchrun = detect({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4",
                       "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "MASTER_ADDR": "h",
                       "MASTER_PORT": "29500"})  # fmt: skip
    assert (torchrun.launcher, torchrun.rank) == ("torchrun", 3)


# --------------------------------------------------------------------------- PBS job script

#: Stands in for python: records what MASTER_ADDR every rank was handed.
FAKE_PYTHON = """#!/bin/bash
echo "${PALS_RANKID:-?} ${MASTER_ADDR-unset}" >>"$RECORD"
"""


def run_pbs_script(tmp_path: Path, env_file: Path | None, **env: str) -> list[str]:
    """Render a 2-node PBS training script, run it with fake mpiexec; each rank's line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "mpiexec").exists():
        os.symlink(FAKES / "mpiexec", bin_dir / "mpiexec")
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    cluster = ClusterConfig(backend="pbs", nodes=2, gpus_per_node=0, ranks_per_node=2,
                            cores_per_node=4, python=str(python), filesystems="home",
                            env_file=None if env_file is None else str(env_file))  # fmt: skip
    point = tmp_path / "point"
    point.mkdir(exist_ok=True)
    text = render_job_script("pbs", cluster=cluster, point_dir=point, job_name="e-p1",
                             stdout_path="job.out")  # fmt: skip
    script = write_job_script(point / "job.sh", text)
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("\nx4616c3s4b0n0.hostmgmt\nx4616c3s5b0n0.hostmgmt\n")
    record = tmp_path / "record"
    record.unlink(missing_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MASTER_")}
    environ.update(PATH=f"{bin_dir}:{os.environ['PATH']}", PBS_NODEFILE=str(nodefile),
                   PBS_JOBID="42.pbs01", RECORD=str(record), **env)  # fmt: skip
    subprocess.run(["bash", "-n", str(script)], check=True)
    subprocess.run(["bash", str(script)], cwd=point, env=environ, timeout=60,
                   capture_output=True, check=False)  # fmt: skip
    return sorted(record.read_text().splitlines())


def test_the_pbs_script_hands_every_rank_the_first_node(tmp_path: Path) -> None:
    """Ranks on sister nodes need no PBS_NODEFILE: the batch shell read it once."""
    ranks = run_pbs_script(tmp_path, None)
    assert ranks == [f"{rank} x4616c3s4b0n0.hostmgmt" for rank in range(4)]


def test_the_environment_file_chooses_the_address_first(tmp_path: Path) -> None:
    env_file = tmp_path / "site.sh"
    env_file.write_text(': "${MASTER_ADDR:=x4616c3s4b0n0.hsn.cm.aurora.alcf.anl.gov}"\n'
                        "export MASTER_ADDR\n")  # fmt: skip
    ranks = run_pbs_script(tmp_path, env_file)
    assert ranks == [f"{rank} x4616c3s4b0n0.hsn.cm.aurora.alcf.anl.gov" for rank in range(4)]
