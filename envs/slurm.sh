# shellcheck shell=bash
# Environment of a splinenas training job on a generic Slurm GPU cluster,
# NVIDIA (CUDA + NCCL) or AMD (ROCm + RCCL, which reads the same NCCL_* names).
# For Frontier and Perlmutter use envs/frontier.sh and envs/perlmutter.sh,
# which carry those machines' network settings.
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the first node of the allocation before
# srun; srun hands the environment to every task (its default --export=ALL).
# Name it in the experiment file as  [cluster] env_file = "envs/slurm.sh".
# Safe to source twice: every step is idempotent.
#
# Site knobs, set them before the job script sources this file (e.g. in
# ~/.bashrc) when the defaults do not fit:
#   SPLINENAS_MODULES     space-separated modules to load, e.g. "cuda/12.4" or
#                         "rocm/6.2"; empty = none
#   SPLINENAS_VENV        virtualenv with torch and splinenas; empty = none
#   SPLINENAS_CONDA_ENV   conda env (name or path) instead of a virtualenv

# >>> SITE: the modules of your site (SPLINENAS_MODULES), from its current guide.
: "${SPLINENAS_MODULES=}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
splinenas_site slurm.sh || return 1

# ROCm nodes (/dev/kfd): MIOpen's database on node-local storage.
if [[ -e /dev/kfd ]]; then
    splinenas_miopen_cache
fi
