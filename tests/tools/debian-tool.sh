#!/bin/bash
# Usage: debian-tool.sh PACKAGE COMMAND [COMMAND...]
# Print the path of the first COMMAND on PATH, installing Debian's PACKAGE first when
# none is there (needs root and apt, like tests/slurm/cluster.sh does for Slurm).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: debian-tool.sh PACKAGE COMMAND [COMMAND...]" >&2; exit 2; }
package="$1"
shift
DIR="${SPLINENAS_TOOLS_DIR:-/tmp/splinenas-tools}"
mkdir -p "$DIR"
die() { echo "debian-tool.sh: $*" >&2; exit 1; }
find_tool() {
    local name
    for name in "$@"; do
        command -v "$name" && return 0
    done
    return 0
}
offered() { [[ "$(apt-cache policy "$package" 2>/dev/null)" =~ Candidate:\ [0-9] ]]; }
tool="$(find_tool "$@")"
if [[ -z "$tool" ]]; then
    [[ "$(id -u)" == 0 ]] || die "$1 is not installed and installing $package needs root"
    command -v apt-get >/dev/null || die "$1 is not installed and there is no apt-get"
    exec 9>"$DIR/install.lock"
    flock 9
    tool="$(find_tool "$@")"
    if [[ -z "$tool" ]]; then
        offered || apt-get update >"$DIR/apt-$package.log" 2>&1 || true
        offered || die "apt offers no $package package (apt-cache policy $package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" \
            >>"$DIR/apt-$package.log" 2>&1 ||
            die "apt-get install $package failed; see $DIR/apt-$package.log: $(tail -n 5 "$DIR/apt-$package.log")"
        tool="$(find_tool "$@")"
    fi
fi
[[ -n "$tool" ]] || die "$package installed but none of $* is on PATH"
echo "$tool"
