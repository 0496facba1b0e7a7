#!/bin/bash
# Print the path of a headless-capable Chromium, installing Debian's package first when
# it is missing (needs root and apt, like tests/slurm/cluster.sh does for Slurm).
set -euo pipefail
DIR="${SPLINENAS_BROWSER_DIR:-/tmp/splinenas-browser}"
mkdir -p "$DIR"
die() { echo "chromium.sh: $*" >&2; exit 1; }
find_browser() { command -v chromium || command -v chromium-browser || true; }
offered() { [[ "$(apt-cache policy chromium 2>/dev/null)" =~ Candidate:\ [0-9] ]]; }
browser="$(find_browser)"
if [[ -z "$browser" ]]; then
    [[ "$(id -u)" == 0 ]] || die "chromium is not installed and installing it needs root"
    command -v apt-get >/dev/null || die "chromium is not installed and there is no apt-get"
    exec 9>"$DIR/install.lock"
    flock 9
    browser="$(find_browser)"
    if [[ -z "$browser" ]]; then
        offered || apt-get update >"$DIR/apt.log" 2>&1 || true
        offered || die "apt offers no chromium package (apt-cache policy chromium)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
            >>"$DIR/apt.log" 2>&1 ||
            die "apt-get install chromium failed; see $DIR/apt.log: $(tail -n 5 "$DIR/apt.log")"
        browser="$(find_browser)"
    fi
fi
[[ -n "$browser" ]] || die "chromium installed but not on PATH"
echo "$browser"
