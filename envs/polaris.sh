# shellcheck shell=bash
# Environment of a splinenas training job on a PBS Professional + PALS machine:
# ALCF Polaris (4 A100 per node, CUDA + NCCL) or Aurora (Intel GPUs; see the
# README: the trainer drives CUDA and ROCm devices only).
#
# The job script sources this file on the job's first node before mpiexec;
# PALS mpiexec hands the resulting environment to every rank. Name it in the
# experiment file as  [cluster] env_file = "envs/polaris.sh".
# Safe to source twice: every step is idempotent.
#
# Site knobs, set them before the job script sources this file (e.g. in
# ~/.bashrc) when the defaults do not fit:
#   SPLINENAS_MODULES     space-separated modules to load; empty = none
#   SPLINENAS_VENV        virtualenv with splinenas installed on top of the
#                         site's PyTorch (python -m venv --system-site-packages)

# >>> SITE PLACEHOLDER: the module lines of your site. On Polaris the ALCF
# >>> documentation names e.g. "use /soft/modulefiles" and "module load conda";
# >>> check your centre's current guide and put its modules here.
: "${SPLINENAS_MODULES:=}"
: "${SPLINENAS_VENV:=}"

_splinenas_pbs_env() {
    # Lmod and venv activation read unset variables and return non-zero on
    # harmless conditions, so they run without the caller's -e/-u; the
    # caller's options are restored afterwards.
    local saved rc=0 mod
    saved=$-
    set +eu
    for mod in $SPLINENAS_MODULES; do
        if ! module load "$mod"; then
            echo "envs/polaris.sh: 'module load $mod' failed" >&2
            rc=1
            break
        fi
    done
    if ((rc == 0)) && [[ -n $SPLINENAS_VENV ]]; then
        if [[ -f $SPLINENAS_VENV/bin/activate ]]; then
            # shellcheck disable=SC1091
            source "$SPLINENAS_VENV/bin/activate"
        else
            echo "envs/polaris.sh: SPLINENAS_VENV=$SPLINENAS_VENV has no bin/activate" >&2
            rc=1
        fi
    fi
    if [[ $saved == *e* ]]; then set -e; fi
    if [[ $saved == *u* ]]; then set -u; fi
    return "$rc"
}
_splinenas_pbs_env || return 1
unset -f _splinenas_pbs_env

# Progress lines reach the per-segment log as they happen, not at exit.
export PYTHONUNBUFFERED=1
# The GPU does the arithmetic; the rank's cores (mpiexec --depth) are needed by
# the data-loader workers that decode JPEGs, so the rank keeps one thread.
: "${OMP_NUM_THREADS:=1}"
export OMP_NUM_THREADS
# A rank that dies must bring the others down with an error instead of leaving
# them blocked in an all-reduce until the walltime ends.
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
: "${NCCL_DEBUG:=WARN}"
export NCCL_DEBUG
