# shellcheck shell=bash
# Environment of a splinenas training job on a Flux machine: LLNL El Capitan,
# Tuolumne (4 AMD MI300A per node, ROCm + RCCL, which reads the NCCL_* names).
#
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

# >>> SITE PLACEHOLDER: the module lines of your site, e.g. a "rocm/<version>"
# >>> module matching your PyTorch build; check your centre's current guide.
: "${SPLINENAS_MODULES:=}"
: "${SPLINENAS_VENV:=}"

_splinenas_flux_env() {
    # Lmod and venv activation read unset variables and return non-zero on
    # harmless conditions, so they run without the caller's -e/-u; the
    # caller's options are restored afterwards.
    local saved rc=0 mod
    saved=$-
    set +eu
    for mod in $SPLINENAS_MODULES; do
        if ! module load "$mod"; then
            echo "envs/flux.sh: 'module load $mod' failed" >&2
            rc=1
            break
        fi
    done
    if ((rc == 0)) && [[ -n $SPLINENAS_VENV ]]; then
        if [[ -f $SPLINENAS_VENV/bin/activate ]]; then
            # shellcheck disable=SC1091
            source "$SPLINENAS_VENV/bin/activate"
        else
            echo "envs/flux.sh: SPLINENAS_VENV=$SPLINENAS_VENV has no bin/activate" >&2
            rc=1
        fi
    fi
    if [[ $saved == *e* ]]; then set -e; fi
    if [[ $saved == *u* ]]; then set -u; fi
    return "$rc"
}
_splinenas_flux_env || return 1
unset -f _splinenas_flux_env

# Progress lines reach the per-segment log as they happen, not at exit.
export PYTHONUNBUFFERED=1
# The GPU does the arithmetic; the task's cores (flux run -c) are needed by the
# data-loader workers that decode JPEGs, so the rank keeps one thread.
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS
# A rank that dies must bring the others down with an error instead of leaving
# them blocked in an all-reduce until the time limit ends.
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
: "${NCCL_DEBUG:=WARN}"
export NCCL_DEBUG
# MIOpen keeps its tuning database under ~/.config by default; hundreds of ranks
# locking one file on a shared file system stall for minutes: a node-local copy.
: "${MIOPEN_USER_DB_PATH:=/tmp/${USER:-splinenas}-miopen}"
: "${MIOPEN_CUSTOM_CACHE_DIR:=$MIOPEN_USER_DB_PATH}"
export MIOPEN_USER_DB_PATH MIOPEN_CUSTOM_CACHE_DIR
