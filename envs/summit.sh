# shellcheck shell=bash
# Environment of a splinenas training job on a Summit-like machine
# (IBM AC922 nodes: 2 POWER9, 6 V100-16GB, LSF + jsrun).
#
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

: "${SPLINENAS_OPENCE_MODULE:=open-ce}"
: "${SPLINENAS_CONDA_ENV:=}"

_splinenas_summit_env() {
    # Lmod and conda's shell functions read unset variables and return non-zero
    # on harmless conditions, so they run without the caller's -e/-u; the
    # caller's options are restored afterwards.
    local saved
    saved=$-
    set +eu
    local rc=0
    if ! module load "$SPLINENAS_OPENCE_MODULE"; then
        echo "envs/summit.sh: 'module load $SPLINENAS_OPENCE_MODULE' failed" >&2
        rc=1
    elif [[ -n $SPLINENAS_CONDA_ENV ]] && ! conda activate "$SPLINENAS_CONDA_ENV"; then
        echo "envs/summit.sh: 'conda activate $SPLINENAS_CONDA_ENV' failed" >&2
        rc=1
    fi
    if [[ $saved == *e* ]]; then set -e; fi
    if [[ $saved == *u* ]]; then set -u; fi
    return "$rc"
}
_splinenas_summit_env || return 1
unset -f _splinenas_summit_env

# ~/.local packages built for another Python or architecture would shadow the
# conda env's ppc64le builds.
export PYTHONNOUSERSITE=1
# Progress lines reach the per-segment log as they happen, not at exit.
export PYTHONUNBUFFERED=1
# Home directories are read-only on Summit compute nodes; anything that caches
# under ~/.cache (torch hub, kernels) writes to node-local /tmp instead.
: "${XDG_CACHE_HOME:=/tmp/${USER:-splinenas}-cache}"
export XDG_CACHE_HOME

# One rank per GPU gets 7 of the node's 42 usable cores (jsrun -c 7 per rank).
# The GPU does the arithmetic; the cores are needed by the data-loader worker
# processes that decode JPEGs. More OpenMP threads in the rank itself would
# compete with them, so the rank keeps one.
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS

# A rank that dies must bring the others down with an error instead of leaving
# them blocked in an all-reduce until the walltime ends (34 nodes idle).
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
# NCCL names the failing peer and transport in the log when something breaks.
: "${NCCL_DEBUG:=WARN}"
export NCCL_DEBUG

