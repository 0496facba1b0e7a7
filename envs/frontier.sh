# shellcheck shell=bash
# Environment of a splinenas training job on OLCF Frontier (Slurm; 8 AMD MI250X
# GCDs per node, ROCm + RCCL, HPE Slingshot 11: four NICs hsn0-hsn3).
#
# Sources:
#   OLCF, "PyTorch on Frontier":
#     https://docs.olcf.ornl.gov/software/python/pytorch_frontier.html
#     (modules, MASTER_ADDR=$(hostname -i), NCCL_SOCKET_IFNAME, the MIOpen
#     cache in /tmp, the aws-ofi-rccl plugin on LD_LIBRARY_PATH,
#     NCCL_NET_GDR_LEVEL=3, NCCL_CROSS_NIC=1; the page's current version adds
#     the rccl-net-plugin module, FI_MR_CACHE_MONITOR=kdreg2 and the optional
#     FI_CXI_RDZV_PROTO=alt_read with srun --network=disable_rdzv_get)
#   OLCF AI training, "Enhancing PyTorch Performance on Frontier with the RCCL
#     OFI-Plugin": https://www.olcf.ornl.gov/wp-content/uploads/OLCF_AI_Training_0417_2024.pdf
# Without the plugin RCCL talks between nodes over TCP sockets, which does not
# scale: the trainer's communication check at the start of every job reports
# the bus bandwidth and warns below envs' documented expectation (README).
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the first node before srun; srun hands
# the environment to every task. [cluster] keys for Frontier: gpus_per_node = 8,
# gpu_bind = "closest", cores_per_node = 56, env_file = "envs/frontier.sh";
# with FI_CXI_RDZV_PROTO=alt_read also extra_directives = ["--network=disable_rdzv_get"].
#
# Site knobs (set before the job script sources this file, e.g. in ~/.bashrc):
#   SPLINENAS_MODULES           modules to load (default below)
#   SPLINENAS_VENV / SPLINENAS_CONDA_ENV   the environment with torch and splinenas
#   SPLINENAS_RCCL_PLUGIN_DIR   lib/ folder of a self-built aws-ofi-rccl, when the
#                               modules do not provide the plugin

# >>> SITE: module names and versions change with every OLCF software stack;
# >>> take the current ones from the page above (a ROCm matching your torch
# >>> build, and rccl-net-plugin where the stack has it).
: "${SPLINENAS_MODULES=PrgEnv-gnu/8.5.0 rocm/6.2.4 craype-accel-amd-gfx90a miniforge3/23.11.0-0}"
: "${SPLINENAS_RCCL_PLUGIN_DIR:=}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
splinenas_site frontier.sh || return 1
splinenas_miopen_cache

splinenas_rccl_slingshot
: "${NCCL_NET_GDR_LEVEL:=3}"
export NCCL_NET_GDR_LEVEL
# The rendezvous on the Slingshot address of this (rank 0's) node, as OLCF asks.
if [[ -z ${MASTER_ADDR:-} ]]; then
    MASTER_ADDR=$(hostname -i | cut -d' ' -f1) && export MASTER_ADDR
fi
splinenas_expect_bus_gbps 8
