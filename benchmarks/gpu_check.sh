#!/usr/bin/env bash
# The GPU checks and throughput rows, in one call under 8 minutes on one GPU node.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Needs a CUDA GPU and the project's Python (PYTHON, default python3); downloads
# nothing. Rows run one by one, most important first, each in its own process
# under its own time limit (`timeout`); each row's JSON line is appended to
# OUT_DIR/rows.jsonl and its verdict to OUT_DIR/summary.txt the moment it
# completes, so a row that runs long costs only itself. When less of the total
# budget (GPU_CHECK_BUDGET seconds, default 450) is left than a row's own limit,
# the row and its reason are written as SKIPPED instead. A node where torch
# sees no GPU FAILS (visibility row) and the GPU rows after it are not run.
# OUT_DIR/throughput.md is the table of whatever rows completed. Exit status: 0
# when nothing failed or timed out, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${1:-${OUT:-gpu-check}}
python=${PYTHON:-python3}
budget=${GPU_CHECK_BUDGET:-450}
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 1
export PYTHONPATH=$PWD
export python out
: >"$out/rows.jsonl"
: >"$out/summary.txt"
start=$SECONDS
failed=0

say() { echo "$*" | tee -a "$out/summary.txt"; }

# run NAME LIMIT COMMAND...: the command's stdout (JSON lines) goes to rows.jsonl.
run() {
    local name=$1 limit=$2 left status
    shift 2
    left=$((budget - (SECONDS - start)))
    if ((left < limit)); then
        say "SKIPPED $name: ${left} s of the ${budget} s budget left, the row may take ${limit} s"
        return 0
    fi
    local began=$SECONDS
    timeout "$limit" "$@" >>"$out/rows.jsonl" 2>>"$out/$name.log"
    status=$?
    if ((status == 124)); then
        say "TIMED OUT $name after ${limit} s (see $name.log)"
        failed=1
    elif ((status != 0)); then
        say "FAILED $name (exit status $status, $((SECONDS - began)) s; see $name.log)"
        failed=1
    else
        say "ok $name ($((SECONDS - began)) s)"
    fi
    return "$status"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

if ! run visibility 60 "$python" benchmarks/device_check.py visibility; then
    say "no usable GPU: the remaining rows are not run"
    tail -1 "$out/rows.jsonl"
    exit 1
fi
gpus=$("$python" -c 'import torch; print(torch.cuda.device_count())')

# The no-sync check must pass, not be skipped: a skip means it never ran on a GPU.
# shellcheck disable=SC2317  # run through `bash -c` under timeout
sync_check() {
    "$python" -m pytest -q -p no:cacheprovider tests/test_train_meter.py -k cuda -rs \
        >"$out/sync_check.txt" 2>&1
    local status=$?
    tail -3 "$out/sync_check.txt" >&2
    grep -q " passed" "$out/sync_check.txt" && ! grep -q "skipped" "$out/sync_check.txt" \
        && ((status == 0))
}
export -f sync_check
run sync 90 bash -c sync_check
run allreduce 90 "$python" -m torch.distributed.run --standalone --nproc-per-node="$gpus" \
    benchmarks/device_check.py allreduce

# shellcheck disable=SC2317  # run through `bash -c` under timeout
throughput() {
    (cd benchmarks && "$python" train_throughput.py --suite gpu --only "$1" --stream \
        --steps 20 --images 256 --rounds 2 --trainer-images 2048)
}
export -f throughput
# name:limit, fast and most telling first; the compiled rows last.
for row in model:resnet50-fp32:60 model:resnet50-bf16-cl:60 data:90 trainer:cpu:100 \
    model:blresnext50-bf16-cl:60 model:resnet50-bf16-cl-compile:150 \
    model:blresnext50-bf16-cl-compile:150 trainer:gpu:100; do
    # shellcheck disable=SC2016  # $1 expands in the child shell
    run "${row%:*}" "${row##*:}" bash -c 'throughput "$1"' throughput "${row%:*}"
done

"$python" - "$out" >"$out/throughput.md" <<'PY'
import json, pathlib, sys
sys.path.insert(0, "benchmarks")
from reporting import print_table
from train_throughput import feed_summary
out = pathlib.Path(sys.argv[1])
rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines() if line.strip()]
throughput = [r for r in rows if r.get("pipe") in ("model", "data", "trainer")]
cols = ["pipe", "what", "device", "precision", "batch", "images_per_second",
        "data_wait_share", "warmup_seconds", "peak_memory_gib", "reference"]
print_table(throughput, cols, float_format=".4g")
print()
print("\n".join(feed_summary(throughput)))
for row in rows:
    if row.get("pipe") in ("visibility", "allreduce"):
        print(f"{row['pipe']}: {row.get('reason')}")
PY
cat "$out/throughput.md"
echo "== $((SECONDS - start)) s of the ${budget} s budget"
cat "$out/summary.txt"
exit "$failed"
