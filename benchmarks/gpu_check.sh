#!/usr/bin/env bash
# All GPU rows of the throughput table and the no-sync check, in one call.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Needs one CUDA GPU and the project's Python (PYTHON, default python3). Takes
# about 6-8 minutes on one H200 with 16 cores (torch.compile of ResNet-50 and
# bL-ResNeXt-50 is most of it), so a 15-minute device slot leaves time to rerun.
# Writes OUT_DIR/throughput.json (the rows) and OUT_DIR/throughput.md (the table).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

echo "== no host sync in the steady-state step (torch.cuda.set_sync_debug_mode('error'))"
timeout 240 "$python" -m pytest -q -p no:cacheprovider tests/test_train_meter.py \
    -k cuda 2>&1 | tee "$out/sync_check.txt"

echo "== throughput rows"
cd benchmarks
timeout 480 "$python" train_throughput.py --suite gpu --steps 20 --images 256 --rounds 2 \
    --trainer-images 2048 --json > "../$out/throughput.json"
"$python" - "../$out/throughput.json" > "../$out/throughput.md" <<'PY'
import json, sys
from reporting import print_table
doc = json.load(open(sys.argv[1]))
cols = ["pipe", "what", "device", "precision", "batch", "images_per_second",
        "data_wait_share", "warmup_seconds", "peak_memory_gib", "reference"]
print_table(doc["rows"], cols, float_format=".4g")
print()
print("\n".join(doc["feed"]))
PY
cat "../$out/throughput.md"
