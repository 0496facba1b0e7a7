# shellcheck shell=bash
# Environment of a splinenas training job on NERSC Perlmutter (Slurm; 4 NVIDIA
# A100 per GPU node, CUDA + NCCL, HPE Slingshot 11: four NICs).
#
# Sources:
#   NERSC, "PyTorch": https://docs.nersc.gov/machinelearning/pytorch/
#     (the pytorch modules, srun --cpu-bind=cores, the NCCL plugin in the modules)
#   NCCL over Slingshot 11 with aws-ofi-nccl (the same settings ALCF measured on
#     Polaris; CSCS documents them for its Slingshot machines):
#     https://docs.alcf.anl.gov/polaris/applications-and-libraries/libraries/nccl/
#     https://docs.cscs.ch/software/communication/nccl/
#   D. M. Rogers (ORNL), all-reduce with and without the plugin on Perlmutter:
#     https://gist.github.com/frobnitzem/0bd3be6084115d7d58d30e6753abb251
#     (without it NCCL falls back to TCP sockets: 2-3x less bandwidth)
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the first node before srun. [cluster]
# keys: gpus_per_node = 4, gpu_bind = "closest", cpu_bind = "cores",
# cores_per_node = 64, constraint = "gpu", env_file = "envs/perlmutter.sh".
#
# Site knobs (set before the job script sources this file, e.g. in ~/.bashrc):
#   SPLINENAS_MODULES     modules to load (default below)
#   SPLINENAS_VENV        virtualenv on top of the module's torch
#                         (python -m venv --system-site-packages)

# >>> SITE: NERSC's module names and versions change; take the current pytorch
# >>> module from the page above (it brings NCCL with the libfabric plugin).
: "${SPLINENAS_MODULES=pytorch}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
splinenas_load_site perlmutter.sh || return 1
splinenas_job_defaults
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
fi

# NCCL between nodes through libfabric (aws-ofi-nccl), not TCP sockets: with
# NCCL_NET set NCCL fails at start when the plugin is missing instead of
# falling back to sockets.
: "${NCCL_NET:=AWS Libfabric}"
: "${NCCL_SOCKET_IFNAME:=hsn}"
: "${NCCL_NET_GDR_LEVEL:=PHB}"
: "${NCCL_CROSS_NIC:=1}"
: "${FI_CXI_DISABLE_HOST_REGISTER:=1}"
: "${FI_MR_CACHE_MONITOR:=userfaultfd}"
: "${FI_CXI_DEFAULT_CQ_SIZE:=131072}"
export NCCL_NET NCCL_SOCKET_IFNAME NCCL_NET_GDR_LEVEL NCCL_CROSS_NIC
export FI_CXI_DISABLE_HOST_REGISTER FI_MR_CACHE_MONITOR FI_CXI_DEFAULT_CQ_SIZE

# The trainer's start-up all-reduce warns below this bus bandwidth (GB/s): a
# collective library on TCP sockets instead of the Slingshot plugin. A starting
# value, not measured on this machine: see the README's "Communication check".
: "${SPLINENAS_EXPECTED_BUS_GBPS:=8}"
export SPLINENAS_EXPECTED_BUS_GBPS
