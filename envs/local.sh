# shellcheck shell=bash
# Environment of a splinenas training job run by the local backend (this
# machine, torchrun, no scheduler). Activates the repository's .venv when it
# exists and no other virtualenv is active.
# Name it in the experiment file as  [cluster] env_file = "envs/local.sh".
# Safe to source twice: activating the active venv again changes nothing.

_splinenas_local_env() {
    # venv's activate script reads unset variables; it runs without the
    # caller's -e/-u, whose options are restored afterwards.
    local saved here venv
    saved=$-
    set +eu
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    venv="$(dirname "$here")/.venv"
    if [[ -z ${VIRTUAL_ENV:-} || $VIRTUAL_ENV == "$venv" ]] && [[ -f $venv/bin/activate ]]; then
        # shellcheck disable=SC1091
        source "$venv/bin/activate"
    fi
    if [[ $saved == *e* ]]; then set -e; fi
    if [[ $saved == *u* ]]; then set -u; fi
}
_splinenas_local_env
unset -f _splinenas_local_env

# Progress lines reach the per-segment log as they happen, not at exit.
export PYTHONUNBUFFERED=1
