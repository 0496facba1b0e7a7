# shellcheck shell=bash
# What every splinenas job environment does, whatever the site: sourced by the
# site files (frontier.sh, elcapitan.sh, perlmutter.sh, polaris.sh, aurora.sh,
# slurm.sh, flux.sh, summit.sh). A site copies two files: its site file and
# this one, side by side.
#
# Functions (the site file calls them; nothing runs on sourcing this file but
# the definitions):
#   splinenas_load_site NAME   add $SPLINENAS_MODULE_PATHS to the module path
#                              (module use), load $SPLINENAS_MODULES (both
#                              space-separated), then
#                              activate $SPLINENAS_VENV or $SPLINENAS_CONDA_ENV;
#                              returns non-zero naming what failed
#   splinenas_job_defaults     unbuffered Python, one OpenMP thread per rank,
#                              NCCL/RCCL errors that end the job, NCCL warnings
#   splinenas_miopen_cache     ROCm: MIOpen's user database and kernel cache in
#                              node-local /tmp, one folder per job
# Safe to source twice: every step is idempotent.

splinenas_load_site() {
    # Lmod, conda and venv activation read unset variables and return non-zero
    # on harmless conditions, so they run without the caller's -e/-u; the
    # caller's options are restored afterwards.
    local name=$1 saved rc=0 mod
    saved=$-
    set +eu
    for mod in ${SPLINENAS_MODULE_PATHS:-}; do
        if ! module use "$mod"; then
            echo "envs/$name: 'module use $mod' failed" >&2
            rc=1
            break
        fi
    done
    for mod in ${SPLINENAS_MODULES:-}; do
        ((rc == 0)) || break
        if ! module load "$mod"; then
            echo "envs/$name: 'module load $mod' failed" >&2
            rc=1
            break
        fi
    done
    if ((rc == 0)) && [[ -n ${SPLINENAS_VENV:-} ]]; then
        if [[ -f $SPLINENAS_VENV/bin/activate ]]; then
            # shellcheck disable=SC1091
            source "$SPLINENAS_VENV/bin/activate"
        else
            echo "envs/$name: SPLINENAS_VENV=$SPLINENAS_VENV has no bin/activate" >&2
            rc=1
        fi
    elif ((rc == 0)) && [[ -n ${SPLINENAS_CONDA_ENV:-} ]] && ! conda activate "$SPLINENAS_CONDA_ENV"; then
        echo "envs/$name: 'conda activate $SPLINENAS_CONDA_ENV' failed" >&2
        rc=1
    fi
    if [[ $saved == *e* ]]; then set -e; fi
    if [[ $saved == *u* ]]; then set -u; fi
    return "$rc"
}

splinenas_job_defaults() {
    # Progress lines reach the per-segment log as they happen, not at exit.
    export PYTHONUNBUFFERED=1
    # The GPU does the arithmetic; the rank's cores are needed by the data-loader
    # workers that decode JPEGs, so the rank itself keeps one OpenMP thread.
    : "${OMP_NUM_THREADS:=1}"
    export OMP_NUM_THREADS
    # A rank that dies must bring the others down with an error instead of
    # leaving them blocked in an all-reduce until the walltime ends.
    export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
    # NCCL/RCCL names the failing peer and transport in the log when something breaks.
    : "${NCCL_DEBUG:=WARN}"
    export NCCL_DEBUG
}

splinenas_miopen_cache() {
    # MIOpen keeps its tuning database under ~/.config by default; hundreds of
    # ranks locking one file on a shared file system stall for minutes or fail
    # with disk I/O errors (OLCF, "PyTorch on Frontier"). One node-local folder
    # per job: a later job never reads a half-written database.
    local job=${SLURM_JOB_ID:-${FLUX_JOB_ID:-${PBS_JOBID:-${LSB_JOBID:-local}}}}
    : "${MIOPEN_USER_DB_PATH:=/tmp/${USER:-splinenas}-miopen-${job}}"
    : "${MIOPEN_CUSTOM_CACHE_DIR:=$MIOPEN_USER_DB_PATH}"
    export MIOPEN_USER_DB_PATH MIOPEN_CUSTOM_CACHE_DIR
}
