"""34-node job scripts for Frontier, El Capitan, Perlmutter, Polaris and Aurora.

Each is rendered with its site file as ``env_file``, passes ``shellcheck -x``
(which follows the site file into ``envs/common.sh``) and carries the layout
its site documents; ``init`` refuses a PBS experiment without ``filesystems``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from experiment_support import experiment_toml
from tool_support import debian_tool

from nas.cluster.render import render_job_script, write_job_script
from nas.commands.main import main
from nas.config import ClusterConfig

ENVS = Path(__file__).resolve().parent.parent / "envs"

#: site -> (backend, [cluster] keys, lines the script must hold)
SITES = {
    "frontier": (
        "slurm",
        dict(gpus_per_node=8, gpu_bind="closest", cores_per_node=56),
        [
            "#SBATCH --ntasks=272",
            "#SBATCH --gpus-per-task=1",
            "srun --nodes=34 --ntasks-per-node=8 --cpus-per-task=7 --gpus-per-task=1 "
            "--gpu-bind=closest --ntasks=272 --kill-on-bad-exit=1",
        ],
    ),  # fmt: skip
    "perlmutter": (
        "slurm",
        dict(
            gpus_per_node=4,
            gpu_bind="closest",
            cpu_bind="cores",
            cores_per_node=128,
            constraint="gpu",
        ),
        [
            "#SBATCH --ntasks=136",
            "#SBATCH --cpus-per-task=32",
            "--ntasks=136 --cpu-bind=cores --kill-on-bad-exit=1",
        ],  # fmt: skip
    ),  # fmt: skip
    "polaris": (
        "pbs",
        dict(
            gpus_per_node=4,
            cores_per_node=32,
            constraint="system=polaris",
            filesystems="home:eagle",
        ),
        ["#PBS -l filesystems=home:eagle", "mpiexec -n 136 --ppn 4 --depth 8 --cpu-bind depth"],
    ),  # fmt: skip
    "aurora": (
        "pbs",
        dict(
            accelerator="xpu",
            gpus_per_node=12,
            cores_per_node=96,
            cpu_bind="list:1-8:9-16:17-24:25-32:33-40:41-48:53-60:61-68:69-76:77-84:85-92:93-100",
            constraint="system=aurora",
            filesystems="home:flare",
        ),
        [
            "export SPLINENAS_ACCELERATOR=xpu SPLINENAS_RANKS_PER_NODE=12",
            "mpiexec -n 408 --ppn 12 --cpu-bind list:1-8:9-16:17-24:25-32:33-40:41-48:53-60:61-68:69-76:77-84:85-92:93-100 ",
        ],
    ),  # fmt: skip
    "elcapitan": (
        "flux",
        dict(gpus_per_node=4, cores_per_node=96),
        ["#flux: --exclusive", "flux run -N 34 -n 136 -c 24 -g 1 -o gpu-affinity=per-task"],
    ),  # fmt: skip
}


def _script(site: str, tmp_path: Path) -> str:
    backend, keys, _ = SITES[site]
    cluster = ClusterConfig(backend=backend, nodes=34, walltime_minutes=120, signal_seconds=600,
                            account="proj", env_file=str(ENVS / f"{site}.sh"), **keys)  # fmt: skip
    return render_job_script(backend, cluster=cluster, point_dir=str(tmp_path / "p 7"),
                             job_name="e-p7", stdout_path="logs/e-p7.log")  # fmt: skip


@pytest.mark.parametrize("site", sorted(SITES))
def test_site_script_holds_the_documented_layout_and_passes_shellcheck(
    site: str, tmp_path: Path
) -> None:
    text = _script(site, tmp_path)
    for line in SITES[site][2]:
        assert line in text, line
    assert "export SPLINENAS_ACCELERATOR=" in text  # the device every rank must drive
    assert "splinenas: network:" in text  # the plugin and interface, first in the log
    script = write_job_script(tmp_path / "job.sh", text)
    shellcheck = debian_tool("shellcheck", "shellcheck")
    done = subprocess.run([shellcheck, "-x", "-s", "bash", str(script)], capture_output=True,
                          text=True, timeout=120, cwd="/")  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_the_job_log_opens_with_the_network_plugin_and_interface(tmp_path: Path) -> None:
    """The prologue names the plugin library it finds on LD_LIBRARY_PATH, or none."""
    libs = tmp_path / "plugin lib"
    libs.mkdir()
    (libs / "libnccl-net.so").write_text("")
    cluster = ClusterConfig(backend="local", gpus_per_node=0)
    text = render_job_script("local", cluster=cluster, point_dir=str(tmp_path),
                             job_name="e-p7", stdout_path="job.log")  # fmt: skip
    head = "\n".join(line for line in text.splitlines() if "--deadline" not in line)
    env = {"PATH": os.environ["PATH"], "LD_LIBRARY_PATH": f"/nowhere:{libs}",
           "NCCL_SOCKET_IFNAME": "hsn0"}  # fmt: skip
    done = subprocess.run(["bash", "-c", head], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=30)  # fmt: skip
    log = (tmp_path / "job.log").read_text()
    assert done.returncode == 0, done.stderr
    assert f"plugin library={libs}/libnccl-net.so NCCL_SOCKET_IFNAME=hsn0" in log
    assert "NCCL_NET=unset" in log


def test_init_requires_the_file_systems_of_a_pbs_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    base = experiment_toml("pbsfs", {"g1": {"type": "int", "low": 4, "high": 16}})
    tables = """
[model]
family = "resnet"
fixed = { block = 'basic', stem = 'conv7', maxpool = false, c1 = 8, g2 = 8, g3 = 8, g4 = 8, d1 = 1, d2 = 1, d3 = 1, d4 = 1 }
[data]
kind = "digits"
[cluster]
backend = "pbs"
gpus_per_node = 4
cores_per_node = 32
"""
    path = tmp_path / "exp.toml"
    path.write_text(base + tables)
    assert main(["init", "--validate-only", "--offline", str(path)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "[cluster] filesystems" in lines[0] and "home:eagle" in lines[0]
    path.write_text(base + tables + 'filesystems = "home:eagle"\n')
    assert main(["init", "--validate-only", "--offline", str(path)]) == 0
