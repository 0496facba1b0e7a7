#!/bin/sh
# A trainer without Python: evaluates a known function of its two parameters
# and writes result.json the way the contract asks (rank 0, atomically).
#   score(lr, width) = -(log10(lr) + 2)^2 - (width - 6)^2 / 4, best at lr = 0.01, width = 6
# Usage (splinenas fills the fields): score.sh LR WIDTH
set -eu
lr=$1
width=$2
[ "${RANK:-0}" = 0 ] || exit 0
out=$SPLINENAS_POINT_DIR/result.json
awk -v lr="$lr" -v w="$width" 'BEGIN {
    l = log(lr) / log(10)
    printf "{\"metrics\": {\"score\": %.12g}}\n", -(l + 2) ^ 2 - (w - 6) ^ 2 / 4
}' >"$out.tmp"
mv "$out.tmp" "$out"
