"""Site files against the vendors' names and lists (review of the first run, findings 2-5).

Sourced as tests/test_envs.py does it: twice, under ``set -euo pipefail``, with doubles
of Lmod's ``module`` and conda.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from test_envs import ENVS, source_twice

#: Every FI_CXI_* runtime parameter that libfabric's CXI provider documents: ofiwg/libfabric
#: man/fi_cxi.7.md (fi_cxi(7)) at commit af8ddbe92f033b7deb9c4e4f47197d1fd4bcf150. The
#: provider reads no other name: a misspelt one is ignored without a word.
FI_CXI_NAMES = frozenset(
    """
    FI_CXI_ATS FI_CXI_ATS_MLOCK_MODE FI_CXI_CNTR_SPIN_BEFORE_YIELD FI_CXI_CNTR_TRIG_CMDQ
    FI_CXI_CNTR_WB FI_CXI_COLL_FABRIC_MGR_URL FI_CXI_COLL_TIMEOUT_USEC FI_CXI_COLL_USE_DMA_PUT
    FI_CXI_COUNTER_OPS FI_CXI_CQ_FILL_PERCENT FI_CXI_CQ_POLICY FI_CXI_CTRL_RX_EQ_MAX_SIZE
    FI_CXI_DEFAULT_CQ_SIZE FI_CXI_DEFAULT_RX_SIZE FI_CXI_DEFAULT_TX_SIZE FI_CXI_DEFAULT_VNI
    FI_CXI_DEVICE_NAME FI_CXI_DISABLE_ALT_READ_CMDQ FI_CXI_DISABLE_CQ_HUGETLB
    FI_CXI_DISABLE_CUDA_SYNC_MEMOPS FI_CXI_DISABLE_EQ_HUGETLB FI_CXI_DISABLE_HMEM_DEV_REGISTER
    FI_CXI_DISABLE_HOST_REGISTER FI_CXI_DISABLE_NON_INJECT_AMO_IDC
    FI_CXI_DISABLE_NON_INJECT_MSG_IDC FI_CXI_DISABLE_NON_INJECT_RMA_IDC FI_CXI_EAGER_SIZE
    FI_CXI_ENABLE_TRIG_OP_LIMIT FI_CXI_ENABLE_WRITEDATA FI_CXI_EQ_ACK_BATCH_SIZE
    FI_CXI_FC_RETRY_USEC_DELAY FI_CXI_FORCE_DEV_REG_COPY FI_CXI_FORCE_ODP
    FI_CXI_FORCE_ZE_HMEM_SUPPORT FI_CXI_HRP FI_CXI_HYBRID_POSTED_RECV_PREEMPTIVE
    FI_CXI_HYBRID_PREEMPTIVE FI_CXI_HYBRID_RECV_PREEMPTIVE
    FI_CXI_HYBRID_UNEXPECTED_MSG_PREEMPTIVE FI_CXI_LLRING_MODE FI_CXI_MINMAXLOC
    FI_CXI_MR_CACHE_EVENTS_DISABLE_LE_POLL_NSECS FI_CXI_MR_CACHE_EVENTS_DISABLE_POLL_NSECS
    FI_CXI_MR_MATCH_EVENTS FI_CXI_MR_TARGET_ORDERING FI_CXI_MSG_LOSSLESS FI_CXI_ODP
    FI_CXI_OFLOW_BUF_COUNT FI_CXI_OFLOW_BUF_MAX_CACHED FI_CXI_OFLOW_BUF_MIN_POSTED
    FI_CXI_OFLOW_BUF_SIZE FI_CXI_OPTIMIZED_MRS FI_CXI_PCIE_AMO FI_CXI_PRE_REDUCED
    FI_CXI_PROV_KEY_CACHE FI_CXI_RDZV_EAGER_SIZE FI_CXI_RDZV_GET_MIN FI_CXI_RDZV_PROTO
    FI_CXI_RDZV_THRESHOLD FI_CXI_REPSUM FI_CXI_REQ_BUF_MAX_CACHED FI_CXI_REQ_BUF_MAX_COUNT
    FI_CXI_REQ_BUF_MIN_POSTED FI_CXI_REQ_BUF_SIZE FI_CXI_RNR_APPEND_RETRY_TIMEOUT_US
    FI_CXI_RNR_MAX_TIMEOUT_US FI_CXI_RX_MATCH_MODE FI_CXI_SAFE_DEVMEM_COPY_THRESHOLD
    FI_CXI_SW_RX_TX_INIT_MAX FI_CXI_TELEMETRY FI_CXI_TELEMETRY_RGID FI_CXI_UNRELIABLE
    """.split()
)
_FI_CXI = re.compile(r"\bFI_CXI_[A-Z0-9_]*[A-Z0-9]")

#: HPE's "mandatory" libfabric settings for RCCL (HewlettPackard/shs-ccl-docs
#: rccl/rccl_tuning_guide.md, "Essential Libfabric Environment Settings"), less
#: FI_CXI_RDZV_PROTO=alt_read and FI_CXI_RDZV_GET_MIN=0, which need the job's
#: --network=disable_rdzv_get (the guide's note); FI_MR_CACHE_MONITOR is OLCF's kdreg2.
HPE_RCCL = {
    "HSA_FORCE_FINE_GRAIN_PCIE": "1",
    "FI_MR_CACHE_MONITOR": "kdreg2",
    "FI_CXI_DISABLE_HOST_REGISTER": "1",
    "FI_CXI_DEFAULT_CQ_SIZE": "131072",
    "FI_CXI_RX_MATCH_MODE": "hybrid",
    "FI_CXI_RDZV_EAGER_SIZE": "0",
    "FI_CXI_RDZV_THRESHOLD": "0",
    "FI_CXI_DEFAULT_TX_SIZE": "2048",
}
#: ALCF's oneCCL "minimal set ... essential for functionality for training workloads"
#: (argonne-lcf/user-guides docs/aurora/data-science/frameworks/oneCCL.md).
ALCF_ONECCL = {
    "CCL_PROCESS_LAUNCHER": "pmix",
    "CCL_ATL_TRANSPORT": "mpi",
    "FI_MR_CACHE_MONITOR": "userfaultfd",
    "CCL_KVS_MODE": "mpi",
}


@pytest.mark.parametrize("path", sorted(ENVS.glob("*.sh")), ids=lambda p: p.name)
def test_every_fi_cxi_name_in_the_site_files_is_one_libfabric_reads(path: Path) -> None:
    unknown = sorted(set(_FI_CXI.findall(path.read_text())) - FI_CXI_NAMES)
    assert not unknown, f"{path.name}: not in fi_cxi(7): {unknown}"


@pytest.mark.parametrize("name", ["frontier.sh", "elcapitan.sh"])
def test_rccl_sites_export_hpes_libfabric_settings(name: str, tmp_path: Path) -> None:
    done, exported = source_twice(ENVS / name, tmp_path)
    assert done.returncode == 0, done.stderr
    for key, value in HPE_RCCL.items():
        assert exported.get(key) == value, key
    assert "NCCL_NET_PLUGIN" not in exported  # a module (or nothing) provides the plugin


def test_a_module_or_user_value_wins_over_hpes_defaults(tmp_path: Path) -> None:
    done, exported = source_twice(ENVS / "elcapitan.sh", tmp_path,
                                  FI_CXI_RX_MATCH_MODE="software", FI_CXI_RDZV_PROTO="alt_read")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert exported["FI_CXI_RX_MATCH_MODE"] == "software"
    assert exported["FI_CXI_RDZV_PROTO"] == "alt_read"


def test_a_self_built_rccl_plugin_is_named_to_rccl(tmp_path: Path) -> None:
    """OLCF: NCCL_NET_PLUGIN, "IMPORTANT! Without this the plugin will not be used!"."""
    plugin = tmp_path / "aws-ofi-rccl" / "lib"
    done, exported = source_twice(ENVS / "frontier.sh", tmp_path,
                                  SPLINENAS_RCCL_PLUGIN_DIR=str(plugin))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert exported["NCCL_NET_PLUGIN"] == f"{plugin}/librccl-net.so"
    assert exported["LD_LIBRARY_PATH"].split(":")[0] == str(plugin)


def test_aurora_exports_alcfs_oneccl_minimal_set_and_the_overflow_fix(tmp_path: Path) -> None:
    done, exported = source_twice(ENVS / "aurora.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    for key, value in ALCF_ONECCL.items():
        assert exported.get(key) == value, key
    assert exported.get("FI_CXI_OFLOW_BUF_SIZE") == "8388608"
    assert "FI_CXI_OVFLOW_BUF_SIZE" not in exported


def test_aurora_puts_the_rendezvous_on_slingshot_unless_the_user_chose(tmp_path: Path) -> None:
    """ALCF's DDP example: MASTER_ADDR = <host>.hsn.cm.aurora.alcf.anl.gov."""
    done, exported = source_twice(ENVS / "aurora.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    short = socket.gethostname().split(".")[0]
    assert exported["MASTER_ADDR"] == f"{short}.hsn.cm.aurora.alcf.anl.gov"
    done, exported = source_twice(ENVS / "aurora.sh", tmp_path, MASTER_ADDR="10.0.0.7")
    assert done.returncode == 0, done.stderr
    assert exported["MASTER_ADDR"] == "10.0.0.7"
