"""The site environment files: sourced twice under the job scripts' options, with doubles
of Lmod's ``module`` and conda, they load the site's modules, keep the caller's options and
export the network settings their cited pages give; shellcheck -x accepts each."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from tool_support import debian_tool

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / "envs"

#: Site file -> (module calls with the defaults, variables it must export with their values).
SITES: dict[str, tuple[list[str], dict[str, str]]] = {
    "frontier.sh": (
        [
            "module load PrgEnv-gnu/8.5.0",
            "module load rocm/6.2.4",
            "module load craype-accel-amd-gfx90a",
            "module load miniforge3/23.11.0-0",
        ],  # fmt: skip
        {
            "NCCL_SOCKET_IFNAME": "hsn0,hsn1,hsn2,hsn3",
            "FI_MR_CACHE_MONITOR": "kdreg2",
            "NCCL_NET_GDR_LEVEL": "3",
            "NCCL_CROSS_NIC": "1",
        },  # fmt: skip
    ),
    "elcapitan.sh": (
        ["module load rocm"],
        {"NCCL_SOCKET_IFNAME": "hsn0,hsn1,hsn2,hsn3", "FI_MR_CACHE_MONITOR": "kdreg2"},
    ),
    "perlmutter.sh": (
        ["module load pytorch"],
        {
            "NCCL_NET": "AWS Libfabric",
            "NCCL_NET_GDR_LEVEL": "PHB",
            "FI_CXI_DISABLE_HOST_REGISTER": "1",
            "FI_MR_CACHE_MONITOR": "userfaultfd",
        },  # fmt: skip
    ),
    "polaris.sh": (
        ["module use /soft/modulefiles", "module load conda"],
        {
            "NCCL_NET": "AWS Libfabric",
            "NCCL_NET_GDR_LEVEL": "PHB",
            "NCCL_CROSS_NIC": "1",
            "NCCL_COLLNET_ENABLE": "1",
            "FI_CXI_DISABLE_HOST_REGISTER": "1",
            "FI_MR_CACHE_MONITOR": "userfaultfd",
            "FI_CXI_DEFAULT_CQ_SIZE": "131072",
            "SPLINENAS_DEVICE_ORDER": "reversed",
        },  # fmt: skip
    ),
    "aurora.sh": (
        ["module use /soft/modulefiles", "module load frameworks"],
        {
            "ZE_FLAT_DEVICE_HIERARCHY": "FLAT",
            "FI_CXI_DEFAULT_CQ_SIZE": "131072",
            "CCL_ALLREDUCE_SCALEOUT": "rabenseifner",
        },  # fmt: skip
    ),
}
#: Files for AMD GPUs: MIOpen's database goes to node-local storage, one folder per job.
AMD = ("frontier.sh", "elcapitan.sh", "flux.sh")
COMMON_EXPORTS = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "SPLINENAS_EXPECTED_BUS_GBPS": "8",
                  "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}  # fmt: skip

DOUBLES = """
module() { echo "module $*" >> "$CALLS"; [[ $2 != missing ]]; }
conda() { echo "conda $*" >> "$CALLS"; }
"""


def source_twice(
    path: Path, tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess, dict]:
    """Source ``path`` twice under ``set -euo pipefail``; the exported environment after it."""
    script = f"""set -euo pipefail
{DOUBLES}
source {path}
source {path}
echo "options=$-"
env -0 > {tmp_path / "env.bin"}
"""
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                   "CALLS": str(tmp_path / "calls"), "TMPDIR": str(tmp_path),
                   "SPLINENAS_NET_DIR": str(tmp_path / "no-nics"), **env}  # fmt: skip
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env=environment, timeout=60)  # fmt: skip
    exported = {}
    if (tmp_path / "env.bin").exists():
        for item in (tmp_path / "env.bin").read_bytes().split(b"\0"):
            name, _, value = item.decode().partition("=")
            exported[name] = value
    return done, exported


@pytest.mark.parametrize("name", sorted(SITES))
def test_site_file_loads_its_modules_and_exports_the_network_settings(
    name: str, tmp_path: Path
) -> None:
    modules, settings = SITES[name]
    done, exported = source_twice(ENVS / name, tmp_path, SLURM_JOB_ID="77")
    assert done.returncode == 0, done.stderr
    assert "e" in done.stdout and "u" in done.stdout.split("options=")[1]  # options kept
    assert (tmp_path / "calls").read_text().splitlines() == modules * 2
    for key, value in {**COMMON_EXPORTS, **settings}.items():
        assert exported.get(key) == value, key


@pytest.mark.parametrize("name", sorted(SITES))
def test_a_failing_module_stops_the_site_file_naming_it(name: str, tmp_path: Path) -> None:
    done, _ = source_twice(ENVS / name, tmp_path, SPLINENAS_MODULES="missing")
    assert done.returncode != 0
    assert f"envs/{name}: 'module load missing' failed" in done.stderr


@pytest.mark.parametrize("name", sorted(SITES))
def test_an_empty_module_list_loads_nothing(name: str, tmp_path: Path) -> None:
    done, _ = source_twice(ENVS / name, tmp_path, SPLINENAS_MODULES="", SPLINENAS_MODULE_PATHS="")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "calls").exists()


@pytest.mark.parametrize("name", AMD)
def test_amd_files_put_the_miopen_cache_on_node_local_storage_per_job(
    name: str, tmp_path: Path
) -> None:
    node_tmp = tmp_path / "tmp"
    node_tmp.mkdir()
    (node_tmp / "me-miopen-123").mkdir()  # made first by another user: a known name
    done, exported = source_twice(
        ENVS / name, tmp_path, FLUX_JOB_ID="123", USER="me", TMPDIR=str(node_tmp)
    )
    assert done.returncode == 0, done.stderr
    cache = Path(exported["MIOPEN_USER_DB_PATH"])
    assert cache.parent == node_tmp and cache.name.startswith("me-miopen-123.")
    assert cache.is_dir() and (cache.stat().st_mode & 0o777) == 0o700
    assert exported["MIOPEN_CUSTOM_CACHE_DIR"] == str(cache)
    assert len(list(node_tmp.iterdir())) == 2  # sourced twice, one folder made


@pytest.mark.parametrize(
    ("nics", "expected"),
    [
        (["lo", "hsn0", "hsn1", "hsn2", "hsn3"], "hsn0,hsn1,hsn2,hsn3"),  # Frontier
        (["lo", "eno1", "hsi0", "hsi1", "hsi2", "hsi3"], "hsi0,hsi1,hsi2,hsi3"),  # El Capitan
        (["lo", "hsn0"], "hsn0"),  # one NIC up
        (["lo", "eth0"], "hsn0,hsn1,hsn2,hsn3"),  # neither: OLCF's list
    ],
)
def test_rccl_takes_the_slingshot_interfaces_the_node_has(
    nics: list[str], expected: str, tmp_path: Path
) -> None:
    """A name that matches no interface stops RCCL's bootstrap: LLNL's MI300A nodes call
    their Slingshot NICs hsi*, where Frontier's are hsn*."""
    net = tmp_path / "net"
    for nic in nics:
        (net / nic).mkdir(parents=True)
    done, exported = source_twice(ENVS / "elcapitan.sh", tmp_path, SPLINENAS_NET_DIR=str(net))
    assert done.returncode == 0, done.stderr
    assert exported["NCCL_SOCKET_IFNAME"] == expected


def test_a_user_setting_wins_over_the_site_default(tmp_path: Path) -> None:
    done, exported = source_twice(ENVS / "polaris.sh", tmp_path, NCCL_NET="Socket",
                                  SPLINENAS_DEVICE_ORDER="local-rank")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert exported["NCCL_NET"] == "Socket" and exported["SPLINENAS_DEVICE_ORDER"] == "local-rank"


@pytest.mark.parametrize("path", sorted(ENVS.glob("*.sh")), ids=lambda p: p.name)
def test_every_site_file_says_what_a_site_copies_and_cites_its_pages(path: Path) -> None:
    text = path.read_text()
    if path.name in ("common.sh", "local.sh"):
        return
    header = text.split("\n\n", 1)[0]
    assert "A site copies two files" in text and "envs/common.sh" in text
    assert 'source "$(dirname "${BASH_SOURCE[0]}")/common.sh"' in text
    assert ">>> SITE" in text, "mark the module names as the part a site changes"
    if path.name in SITES:
        assert re.search(r"https://\S+", header), f"{path.name} cites no page in its header"


def test_env_files_pass_shellcheck_with_their_sources_followed() -> None:
    shellcheck = debian_tool("shellcheck", "shellcheck")
    paths = [str(path.relative_to(ROOT)) for path in sorted(ENVS.glob("*.sh"))]
    done = subprocess.run([shellcheck, "-x", "-s", "bash", *paths], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
