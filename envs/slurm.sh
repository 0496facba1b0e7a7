# shellcheck shell=bash
# Environment of a splinenas training job on a generic Slurm GPU cluster,
# NVIDIA (CUDA + NCCL) or AMD (ROCm + RCCL, which reads the same NCCL_* names).
#
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

: "${SPLINENAS_MODULES:=}"
: "${SPLINENAS_VENV:=}"
: "${SPLINENAS_CONDA_ENV:=}"

_splinenas_slurm_env() {
    # Lmod, conda and venv activation read unset variables and return non-zero
    # on harmless conditions, so they run without the caller's -e/-u; the
    # caller's options are restored afterwards.
    local saved rc=0 mod
    saved=$-
    set +eu
    for mod in $SPLINENAS_MODULES; do
        if ! module load "$mod"; then
            echo "envs/slurm.sh: 'module load $mod' failed" >&2
            rc=1
            break
        fi
    done
    if ((rc == 0)) && [[ -n $SPLINENAS_VENV ]]; then
        if [[ -f $SPLINENAS_VENV/bin/activate ]]; then
            # shellcheck disable=SC1091
            source "$SPLINENAS_VENV/bin/activate"
        else
            echo "envs/slurm.sh: SPLINENAS_VENV=$SPLINENAS_VENV has no bin/activate" >&2
            rc=1
        fi
    elif ((rc == 0)) && [[ -n $SPLINENAS_CONDA_ENV ]] && ! conda activate "$SPLINENAS_CONDA_ENV"; then
        echo "envs/slurm.sh: 'conda activate $SPLINENAS_CONDA_ENV' failed" >&2
        rc=1
    fi
    if [[ $saved == *e* ]]; then set -e; fi
    if [[ $saved == *u* ]]; then set -u; fi
    return "$rc"
}
_splinenas_slurm_env || return 1
unset -f _splinenas_slurm_env

# Progress lines reach the per-segment log as they happen, not at exit.
export PYTHONUNBUFFERED=1

# The GPU does the arithmetic; the task's cores are needed by the data-loader
# worker processes that decode JPEGs. More OpenMP threads in the rank itself
# would compete with them, so the rank keeps one.
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS

# Since Slurm 22.05 srun no longer inherits --cpus-per-task from sbatch; without
# this every rank (and all its loader workers) would be pinned to one core.
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
fi

# A rank that dies must bring the others down with an error instead of leaving
# them blocked in an all-reduce until the time limit ends.
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
# NCCL/RCCL names the failing peer and transport in the log when something breaks.
: "${NCCL_DEBUG:=WARN}"
export NCCL_DEBUG

# ROCm: MIOpen keeps its tuning database under ~/.config by default; hundreds of
# ranks locking one file on a shared file system stall for minutes. A
# node-local copy per job avoids that.
if [[ -e /dev/kfd ]]; then
    : "${MIOPEN_USER_DB_PATH:=/tmp/${USER:-splinenas}-miopen-${SLURM_JOB_ID:-local}}"
    : "${MIOPEN_CUSTOM_CACHE_DIR:=$MIOPEN_USER_DB_PATH}"
    export MIOPEN_USER_DB_PATH MIOPEN_CUSTOM_CACHE_DIR
fi

