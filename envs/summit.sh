# shellcheck shell=bash
# Environment of a splinenas training job on a Summit-like machine
# (IBM AC922 nodes: 2 POWER9, 6 V100-16GB, LSF + jsrun).
#
# A site copies two files: this one and envs/common.sh, side by side.
# The job script sources this file on the batch (launch) node before jsrun;
# jsrun hands the resulting environment to every rank. Name it in the
# experiment file as  [cluster] env_file = "envs/summit.sh".
# Safe to source twice: every step is idempotent (module load and conda
# activate of what is already active change nothing; exports only set values).
#
# Site knobs, set them before the job script sources this file (e.g. in
# ~/.bashrc) when the defaults do not fit:
#   SPLINENAS_OPENCE_MODULE  module with the ppc64le PyTorch stack (IBM Open-CE)
#   SPLINENAS_CONDA_ENV      conda env (name or path) cloned from Open-CE, with
#                            splinenas installed (pip install --no-deps -e .);
#                            empty = use the module's base env as it is

# >>> SITE: the module of the site's PyTorch stack.
: "${SPLINENAS_OPENCE_MODULE:=open-ce}"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || return 1
SPLINENAS_MODULES=$SPLINENAS_OPENCE_MODULE SPLINENAS_VENV='' splinenas_site summit.sh || return 1

# ~/.local packages built for another Python or architecture would shadow the
# conda env's ppc64le builds.
export PYTHONNOUSERSITE=1
# Home directories are read-only on Summit compute nodes; anything that caches
# under ~/.cache (torch hub, kernels) writes to a new private folder in
# node-local /tmp instead.
if [[ -z ${XDG_CACHE_HOME:-} ]]; then
    if XDG_CACHE_HOME=$(splinenas_private_dir cache); then
        export XDG_CACHE_HOME
    else
        echo "splinenas: no private folder for caches; they stay under ~/.cache" >&2
    fi
fi
