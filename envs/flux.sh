# shellcheck shell=bash
# Environment of a splinenas training job on a generic Flux machine with AMD
# GPUs (ROCm + RCCL, which reads the NCCL_* names). For El Capitan and
# Tuolumne use envs/elcapitan.sh, which carries their network settings.
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the job's first node before `flux run`;
# flux run hands the environment to every task. Name it in the experiment
# file as  [cluster] env_file = "envs/flux.sh".
# Safe to source twice: every step is idempotent.
#
# Site knobs, set them before the job script sources this file (e.g. in
# ~/.bashrc) when the defaults do not fit:
#   SPLINENAS_MODULES     space-separated modules to load; empty = none
#   SPLINENAS_VENV        virtualenv with splinenas installed on top of a
#                         ROCm build of PyTorch

# >>> SITE: the module lines of your site, e.g. a "rocm/<version>" module
# >>> matching your PyTorch build; check your centre's current guide.
: "${SPLINENAS_MODULES=}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
splinenas_site flux.sh || return 1
splinenas_miopen_cache
