# shellcheck shell=bash
# Environment of a splinenas training job on ALCF Aurora (PBS Professional +
# PALS mpiexec; 6 Intel Data Center GPU Max 1550 per node, 2 tiles each, torch's
# "xpu" devices; oneCCL; HPE Slingshot 11).
#
# Sources:
#   ALCF, "PyTorch on Aurora": https://docs.alcf.anl.gov/aurora/data-science/frameworks/pytorch/
#     (module use /soft/modulefiles; module load frameworks; 12 tiles per node
#     as 12 torch devices of 64 GiB each unless ZE_FLAT_DEVICE_HIERARCHY=COMPOSITE;
#     one tile per rank with ZE_AFFINITY_MASK; the FI_CXI_* settings for more
#     than 16 nodes and the CCL_* algorithm choices below)
#   ALCF, "oneCCL": https://docs.alcf.anl.gov/aurora/data-science/frameworks/oneCCL/
#     (the "minimal set ... essential for functionality for training workloads,
#     ... tested up to 1024 nodes": CCL_PROCESS_LAUNCHER=pmix,
#     CCL_ATL_TRANSPORT=mpi, FI_MR_CACHE_MONITOR=userfaultfd, CCL_KVS_MODE=mpi;
#     the ranks are PALS MPI ranks; the xccl DDP example of the PyTorch page
#     runs on top of it)
#   PyTorch's xccl backend (torch 2.8 and later): the trainer joins with
#     backend "xccl" and stops with an environment error where torch lacks it.
#   The rendezvous on the Slingshot name of the first node (where the job script
#     runs and PALS puts rank 0), as ALCF's DDP example does:
#     MASTER_ADDR=<host>.hsn.cm.aurora.alcf.anl.gov (PBS_NODEFILE names the
#     host-management interface)
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the job's first node before mpiexec.
# [cluster] keys: backend = "pbs", accelerator = "xpu", gpus_per_node = 12
# (tiles), ranks_per_node = 12, cores_per_node = 96, constraint = "system=aurora",
# filesystems = "home:flare", max_gpu_memory_gib = 64 (one tile),
# cpu_bind = "list:1-8:9-16:17-24:25-32:33-40:41-48:53-60:61-68:69-76:77-84:85-92:93-100"
# (ALCF, "Running Jobs on Aurora": depth binding puts rank 6 across both
# sockets), env_file = "envs/aurora.sh". Every rank sees the node's 12 tiles
# and drives its local rank's.
#
# Site knobs (set before the job script sources this file, e.g. in ~/.bashrc):
#   SPLINENAS_MODULE_PATHS / SPLINENAS_MODULES   module use / module load
#   SPLINENAS_VENV        virtualenv with splinenas on top of the frameworks
#                         module (python -m venv --system-site-packages)

# >>> SITE: ALCF's module path and module; they change with ALCF's software
# >>> stacks: take them from the page above.
: "${SPLINENAS_MODULE_PATHS=/soft/modulefiles}"
: "${SPLINENAS_MODULES=frameworks}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
splinenas_site aurora.sh || return 1

# Each tile is one torch device (12 per node), one per rank.
: "${ZE_FLAT_DEVICE_HIERARCHY:=FLAT}"
export ZE_FLAT_DEVICE_HIERARCHY
# Slingshot/libfabric: ALCF's fix for runs over 16 nodes (Cassini overflow);
# the overflow buffer is FI_CXI_OFLOW_BUF_SIZE (libfabric man/fi_cxi.7.md, ALCF's
# known-issues page), not the OVFLOW spelling of older ALCF pages.
: "${FI_CXI_DEFAULT_CQ_SIZE:=131072}"
: "${FI_CXI_OFLOW_BUF_SIZE:=8388608}"
: "${FI_CXI_CQ_FILL_PERCENT:=20}"
export FI_CXI_DEFAULT_CQ_SIZE FI_CXI_OFLOW_BUF_SIZE FI_CXI_CQ_FILL_PERCENT
# oneCCL's minimal set for training (ALCF, "oneCCL", above).
: "${CCL_PROCESS_LAUNCHER:=pmix}"
: "${CCL_ATL_TRANSPORT:=mpi}"
: "${FI_MR_CACHE_MONITOR:=userfaultfd}"
: "${CCL_KVS_MODE:=mpi}"
export CCL_PROCESS_LAUNCHER CCL_ATL_TRANSPORT FI_MR_CACHE_MONITOR CCL_KVS_MODE
# oneCCL's collective algorithms that ALCF found best at scale.
: "${CCL_ALLREDUCE:=topo}"
: "${CCL_ALLREDUCE_SCALEOUT:=rabenseifner}"
: "${CCL_BCAST:=double_tree}"
: "${CCL_ZE_CACHE_OPEN_IPC_HANDLES_THRESHOLD:=1024}"
: "${CCL_LOG_LEVEL:=WARN}"
export CCL_ALLREDUCE CCL_ALLREDUCE_SCALEOUT CCL_BCAST CCL_ZE_CACHE_OPEN_IPC_HANDLES_THRESHOLD CCL_LOG_LEVEL
# numexpr defaults to every hardware thread (208) but allows at most 64.
: "${NUMEXPR_NUM_THREADS:=64}"
export NUMEXPR_NUM_THREADS
# The rendezvous over Slingshot (ALCF's DDP example); a MASTER_ADDR set before wins.
: "${MASTER_ADDR:=$(hostname -s).hsn.cm.aurora.alcf.anl.gov}"
export MASTER_ADDR
splinenas_expect_bus_gbps 8
