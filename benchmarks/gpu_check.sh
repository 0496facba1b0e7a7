#!/usr/bin/env bash
# All GPU rows of the throughput table and the no-sync check, in one call.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Needs one CUDA GPU and the project's Python (PYTHON, default python3). Takes
# at most 60 + 200 + 300 s (each part capped by `timeout`; torch.compile of
# ResNet-50 and bL-ResNeXt-50 is most of the last), so one call fits the
# 10-minute command limit and a 15-minute device slot leaves time to rerun.
# Writes OUT_DIR/sync_check.txt, OUT_DIR/throughput-*.json (rows) and
# OUT_DIR/throughput.md (the table).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
python=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

echo "== no host sync in the steady-state step (torch.cuda.set_sync_debug_mode('error'))"
timeout 60 "$python" -m pytest -q -p no:cacheprovider tests/test_train_meter.py \
    -k cuda > "$out/sync_check.txt" 2>&1 || echo "SYNC CHECK FAILED" >> "$out/sync_check.txt"
tail -3 "$out/sync_check.txt"

# fast rows first, so that they come back even if compiling runs long
cd benchmarks
for rows in data,trainer:200 model:300; do
    limit=${rows#*:}
    rows=${rows%:*}
    echo "== throughput rows: $rows (at most $limit s)"
    timeout "$limit" "$python" train_throughput.py --suite gpu --rows "$rows" --steps 20 \
        --images 256 --rounds 2 --trainer-images 2048 --json \
        > "$out/throughput-${rows/,/-}.json" 2> "$out/throughput-${rows/,/-}.log" \
        || echo "rows $rows failed or timed out: see $out/throughput-${rows/,/-}.log"
done
"$python" - "$out" > "$out/throughput.md" <<'PY'
import json, pathlib, sys
from reporting import print_table
rows, feed = [], []
for path in sorted(pathlib.Path(sys.argv[1]).glob("throughput-*.json")):
    if path.stat().st_size:
        doc = json.loads(path.read_text())
        rows += doc["rows"]
        feed += doc["feed"]
cols = ["pipe", "what", "device", "precision", "batch", "images_per_second",
        "data_wait_share", "warmup_seconds", "peak_memory_gib", "reference"]
print_table(rows, cols, float_format=".4g")
print()
print("\n".join(feed))
PY
cat "$out/throughput.md"
