# shellcheck shell=bash
# Environment of a splinenas training job on LLNL El Capitan and Tuolumne
# (Flux; 4 AMD MI300A APUs per node, ROCm + RCCL, HPE Slingshot 11).
#
# Sources:
#   LLNL, "Using El Capitan Systems":
#     https://hpc.llnl.gov/documentation/user-guides/using-el-capitan-systems
#   Flux's GPU affinity and ROCm: https://github.com/flux-framework/flux-core/issues/4534
#     (gpu-affinity=per-task writes CUDA_VISIBLE_DEVICES, which HIP reads as
#     indices into what ROCR_VISIBLE_DEVICES leaves: do not set both here; the
#     trainer rewrites the pair into one ROCR_VISIBLE_DEVICES if they meet)
#   The Slingshot settings follow OLCF's Frontier page (same network and RCCL):
#     https://docs.olcf.ornl.gov/software/python/pytorch_frontier.html
#     but for the interface names: LLNL's MI300A nodes call their Slingshot NICs
#     hsi0-hsi3 (https://github.com/llnl/mpibind/issues/45), Frontier's are
#     hsn0-hsn3; NCCL_SOCKET_IFNAME is set to those the node has (common.sh)
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the job's first node before `flux run`;
# flux run hands the environment to every task. [cluster] keys: backend =
# "flux", gpus_per_node = 4, cores_per_node = 96, env_file = "envs/elcapitan.sh".
#
# Site knobs (set before the job script sources this file, e.g. in ~/.bashrc):
#   SPLINENAS_MODULES           modules to load (default below)
#   SPLINENAS_VENV              virtualenv with splinenas on a ROCm build of torch
#   SPLINENAS_RCCL_PLUGIN_DIR   lib/ folder of the aws-ofi-rccl plugin, when the
#                               modules do not provide it

# >>> SITE: module names and versions change with LLNL's software stacks; take
# >>> the ROCm module that matches your torch build from the page above.
: "${SPLINENAS_MODULES=rocm}"
: "${SPLINENAS_RCCL_PLUGIN_DIR:=}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
splinenas_site elcapitan.sh || return 1
splinenas_miopen_cache
splinenas_rccl_slingshot
splinenas_expect_bus_gbps 8
