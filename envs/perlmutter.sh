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
# cores_per_node = 128, constraint = "gpu", env_file = "envs/perlmutter.sh".
# Slurm on Perlmutter counts hardware threads (128 per GPU node: 64 cores x 2),
# so 128 gives each of 4 ranks 32 CPUs = 16 cores, NERSC's own launch line
# (--cpus-per-task=32, https://docs.nersc.gov/machinelearning/launchers/); 64
# would leave half the cores idle beside the data loaders.
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
splinenas_site perlmutter.sh || return 1

splinenas_nccl_slingshot
: "${NCCL_SOCKET_IFNAME:=hsn}"
export NCCL_SOCKET_IFNAME
splinenas_expect_bus_gbps 8
