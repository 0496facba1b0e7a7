# The environment must load before any rank starts. A failing env file ends
# the job with its own exit status and leaves an error file (kind "environment"):
# the controller does not retry it; fix the file, then `splinenas rerun`.
environment_failed() {
    trap - EXIT
    printf 'splinenas: sourcing %s failed with exit status %d; no rank was started\n' \
        {{env_file}} "$1" >&2
    printf '%s"time": "%s", "exit_code": %d}\n' {{error_prefix}} "$(date -u +%FT%TZ)" "$1" \
        >{{error_file}}.tmp && mv -f {{error_file}}.tmp {{error_file}}
    exit "$1"
}
trap 'environment_failed $?' EXIT
source {{env_file}} || environment_failed $?
trap - EXIT
